import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect } from "node:net";
import { type QuiverProcess, startQuiver } from "./support/quiver-process.ts";

/**
 * A body over the limit gets its 413 and the client can read it: the server
 * reads and discards the rest instead of closing while the client is still
 * sending (which Python's urllib and requests report as a broken pipe).
 */

let server: QuiverProcess;
beforeAll(async () => {
  server = await startQuiver(["--demo-entities", "0", "--max-body-bytes", "65536", "--grpc-port", "-1"]);
});
afterAll(async () => {
  await server?.stop();
});

test("an oversized upload, sent in chunks like urllib does, reads back a 413 with its JSON body, no reset", async () => {
  const { port } = new URL(server.url);
  const size = 8 << 20; // 128x the limit (Python urllib saw a broken pipe here before the drain)
  const socket = connect({ host: "127.0.0.1", port: Number(port) });
  let response = "";
  let writeError: unknown;
  socket.on("data", (chunk) => {
    response += chunk.toString();
  });
  socket.on("error", (e) => {
    writeError = e;
  });
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  socket.write(`POST /v1/push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`);
  const chunk = Buffer.alloc(16 << 10, 0x20);
  for (let sent = 0; sent < size; sent += chunk.length) {
    if (!socket.write(chunk)) await new Promise<void>((resolve) => socket.once("drain", () => resolve()));
    if (writeError) break;
  }
  const deadline = Date.now() + 10_000;
  while (!response.includes("payload_too_large") && !writeError && Date.now() < deadline) await Bun.sleep(20);
  socket.destroy();
  expect(writeError).toBeUndefined();
  expect(response.startsWith("HTTP/1.1 413")).toBe(true);
  expect(response).toContain('"code":"payload_too_large"');
});

/** Sends `body` chunked (no Content-Length) on a raw socket; resolves with what came back once the socket closes or `until` is seen. */
async function sendChunked(path: string, pieces: readonly Buffer[], until: string): Promise<string> {
  const { port } = new URL(server.url);
  const socket = connect({ host: "127.0.0.1", port: Number(port) });
  let response = "";
  socket.on("data", (chunk) => {
    response += chunk.toString();
  });
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
  for (const piece of pieces) {
    const framed = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n")]);
    if (!socket.write(framed)) await new Promise<void>((resolve) => socket.once("drain", () => resolve()));
  }
  socket.write("0\r\n\r\n");
  const deadline = Date.now() + 10_000;
  while (!response.includes(until) && Date.now() < deadline) await Bun.sleep(20);
  socket.destroy();
  return response;
}

test("a chunked body (no length) over the limit is counted as it comes, not held whole: 413 with its JSON body", async () => {
  // 2 MiB in 16 KiB chunks against a 64 KiB limit: arrayBuffer() held all of it (up to limit + 16 MiB) before the 413.
  const response = await sendChunked("/v1/lookup", Array.from({ length: 128 }, () => Buffer.alloc(16 << 10, 0x20)), "payload_too_large");
  expect(response.startsWith("HTTP/1.1 413")).toBe(true);
  expect(response).toContain("body is over 65536 bytes (sent without a length)");
});

test("a chunked body within the limit is read whole, whatever its chunks", async () => {
  const body = Buffer.from(JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities: { driver_id: [1001] } }));
  const pieces = [body.subarray(0, 7), body.subarray(7, 30), body.subarray(30)];
  const response = await sendChunked("/v1/lookup", pieces, "]}");
  expect(response.startsWith("HTTP/1.1 200")).toBe(true);
  expect(response).toContain("conv_rate");
});

/** python3 is on every machine that builds this project (node-gyp needs it for hnswlib-node), so these run everywhere. */
const python = Bun.which("python3") ?? "python3";
/** The client that reported the bug: urllib sends the whole body with sendall and fails with EPIPE if the server resets first. */
test("Python's urllib gets the 413 for an 8 MiB body, not a broken pipe", async () => {
  const script = [
    "import sys, urllib.request, urllib.error",
    "req = urllib.request.Request(sys.argv[1] + '/v1/push', data=b' ' * (8 << 20), headers={'content-type': 'application/json'})",
    "try:",
    "    urllib.request.urlopen(req, timeout=20)",
    "    print('no error')",
    "except urllib.error.HTTPError as e:",
    "    print('HTTP', e.code, e.read().decode()[:60])",
    "except Exception as e:",
    "    print('EXC', type(e).__name__, e)",
  ].join("\n");
  const proc = Bun.spawn([python, "-c", script, server.url], { stdout: "pipe", stderr: "pipe" });
  const out = (await new Response(proc.stdout).text()).trim();
  await proc.exited;
  expect(out).toStartWith("HTTP 413");
  expect(out).toContain("payload_too_large");
});

/** The same for a write refused on its headers (no token): the client still sending its body reads the 401. */
test("Python's urllib gets the 401 of a 3 MB push without the admin token, not a broken pipe", async () => {
  const guarded = await startQuiver(["--demo-entities", "0", "--admin-token", "s3cret", "--grpc-port", "-1"]);
  try {
    const script = [
      "import sys, urllib.request, urllib.error",
      // Three tries: without the drain, the reset won the race in 5 of 6 (the first reply sometimes got through).
      "for _ in range(3):",
      "  req = urllib.request.Request(sys.argv[1] + '/v1/push', data=b' ' * (3 << 20), headers={'content-type': 'application/json'})",
      "  try:",
      "    urllib.request.urlopen(req, timeout=20)",
      "    print('no error')",
      "  except urllib.error.HTTPError as e:",
      "    print('HTTP', e.code, e.headers.get('www-authenticate'), e.read().decode()[:60])",
      "  except Exception as e:",
      "    print('EXC', type(e).__name__, e)",
    ].join("\n");
    const proc = Bun.spawn([python, "-c", script, guarded.url], { stdout: "pipe", stderr: "pipe" });
    const out = (await new Response(proc.stdout).text()).trim().split("\n");
    await proc.exited;
    expect(out.length).toBe(3);
    for (const line of out) {
      expect(line).toStartWith('HTTP 401 Bearer realm="quiver"');
      expect(line).toContain("unauthorized");
    }
  } finally {
    await guarded.stop();
  }
}, 30_000);

/** Opens `n` connections that each send a request's headers and the start of its body, then go quiet. */
async function stalledUploads(n: number, path: string): Promise<import("node:net").Socket[]> {
  const { port } = new URL(server.url);
  const sockets: import("node:net").Socket[] = [];
  for (let i = 0; i < n; i++) {
    const socket = connect({ host: "127.0.0.1", port: Number(port) });
    socket.on("error", () => {});
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{"features":["driver_hourly_stats:conv_rate"],"entities":[`);
    sockets.push(socket);
  }
  return sockets;
}

test("uploads stalled mid-body hold no concurrency slot: lookups and pushes beside 40 of them answer at once, not 503 after the idle timeout", async () => {
  const sockets = [...(await stalledUploads(30, "/v1/lookup")), ...(await stalledUploads(10, "/v1/push"))];
  try {
    await Bun.sleep(50);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/quiver_inflight_requests 0\n/);
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${server.url}/v1/lookup`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities: [{ driver_id: 1001 + i }] }),
        signal: AbortSignal.timeout(5000),
      });
      expect(res.status).toBe(200);
    }
    const push = await fetch(`${server.url}/v1/push`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ featureView: "driver_hourly_stats", rows: [{ driver_id: 5, conv_rate: 0.5, event_timestamp: 1_700_000_000_000 }] }),
      signal: AbortSignal.timeout(5000),
    });
    expect(push.status).toBe(200);
  } finally {
    for (const s of sockets) s.destroy();
  }
});

/** Refusals decided on the headers alone (a wrong content type, a wrong method): the client still sending its body reads them too. */
test("Python's urllib gets the 415 of a 3 MB text/plain push and the 405 of a 3 MB POST /healthz, not a broken pipe", async () => {
  const roomy = await startQuiver(["--demo-entities", "0", "--grpc-port", "-1"]);
  try {
    const script = [
      "import sys, urllib.request, urllib.error",
      // Three tries each: without the drain, 3 of 4 such uploads saw a broken pipe.
      "for path, ctype in [('/v1/push', 'text/plain'), ('/v1/push', None), ('/healthz', 'application/json')]:",
      "  for _ in range(3):",
      "    headers = {} if ctype is None else {'content-type': ctype}",
      "    req = urllib.request.Request(sys.argv[1] + path, data=b' ' * (3 << 20), headers=headers)",
      "    try:",
      "      urllib.request.urlopen(req, timeout=20)",
      "      print('no error')",
      "    except urllib.error.HTTPError as e:",
      "      print('HTTP', e.code, e.read().decode()[:60])",
      "    except Exception as e:",
      "      print('EXC', type(e).__name__, e)",
    ].join("\n");
    const proc = Bun.spawn([python, "-c", script, roomy.url], { stdout: "pipe", stderr: "pipe" });
    const out = (await new Response(proc.stdout).text()).trim().split("\n");
    await proc.exited;
    // urllib's default content type for a body is application/x-www-form-urlencoded: a 415 as well.
    expect(out.map((line) => line.slice(0, 8))).toEqual([...Array(6).fill("HTTP 415"), ...Array(3).fill("HTTP 405")]);
  } finally {
    await roomy.stop();
  }
}, 60_000);

test("HEAD answers carry the GET's Content-Length, not 0", async () => {
  for (const path of ["/v1/registry", "/healthz"]) {
    const get = await fetch(`${server.url}${path}`);
    const length = (await get.arrayBuffer()).byteLength;
    const head = await fetch(`${server.url}${path}`, { method: "HEAD" });
    expect({ path, status: head.status, length: head.headers.get("content-length") }).toEqual({ path, status: get.status, length: String(length) });
  }
});
