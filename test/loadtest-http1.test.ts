import { describe, expect, test } from "bun:test";
import { ResponseParser } from "../loadtest/http1/response-parser.ts";

const enc = new TextEncoder();
const bytes = (s: string) => enc.encode(s);

/** Feeds `text` cut at every position and checks one response completes at the end. */
function feedSplit(text: string, expected: number): void {
  const all = bytes(text);
  for (let cut = 1; cut < all.length; cut++) {
    const p = new ResponseParser();
    expect(p.push(all.subarray(0, cut))).toBe(0);
    expect(p.push(all.subarray(cut))).toBe(expected);
  }
}

describe("HTTP/1.1 response parser", () => {
  test("content-length responses, whole and split at every byte", () => {
    const r = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
    expect(new ResponseParser().push(bytes(r))).toBe(200);
    feedSplit(r, 200);
  });

  test("chunked bodies with extensions and trailers", () => {
    const r = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n";
    expect(new ResponseParser().push(bytes(r))).toBe(201);
    feedSplit(r, 201);
  });

  test("no-body statuses and empty bodies complete at the header end", () => {
    expect(new ResponseParser().push(bytes("HTTP/1.1 204 No Content\r\n\r\n"))).toBe(204);
    expect(new ResponseParser().push(bytes("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"))).toBe(503);
  });

  test("a parser is reusable across keep-alive responses and reports Connection: close", () => {
    const p = new ResponseParser();
    expect(p.push(bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))).toBe(200);
    expect(p.closeAfter).toBe(false);
    expect(p.push(bytes("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))).toBe(404);
    expect(p.closeAfter).toBe(true);
  });

  test("close-delimited bodies finish when the peer closes", () => {
    const p = new ResponseParser();
    expect(p.push(bytes("HTTP/1.0 200 OK\r\n\r\nsome body"))).toBe(0);
    expect(p.readsUntilClose).toBe(true);
    expect(p.finishOnClose()).toBe(200);
  });

  test("garbage and unsolicited bytes are protocol errors", () => {
    expect(() => new ResponseParser().push(bytes("SSH-2.0-OpenSSH\r\n\r\n"))).toThrow("not an HTTP response");
    expect(() => new ResponseParser().push(bytes("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab"))).toThrow("unsolicited");
    expect(() => new ResponseParser().push(bytes("HTTP/1.1 2x0 OK\r\n\r\n"))).toThrow("status");
  });
});
