import { afterAll, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { connect as grpcConnect, type grpc } from "./support/grpc-client.ts";
import { type QuiverProcess, startQuiver } from "./support/quiver-process.ts";

const procs: QuiverProcess[] = [];
afterAll(async () => {
  for (const p of procs) if (p.proc.exitCode === null) await p.stop("SIGKILL");
});

/** One kept-alive HTTP/1.1 connection, read by hand: what its answers' heads say, and whether the server closed it. */
class RawConnection {
  private readonly socket: Socket;
  private buffered = "";
  private waiter: (() => void) | undefined;
  closed = false;

  constructor(url: string) {
    const { hostname, port } = new URL(url);
    this.socket = connect(Number(port), hostname);
    this.socket.on("data", (d) => {
      this.buffered += d.toString("latin1");
      this.waiter?.();
    });
    this.socket.on("close", () => {
      this.closed = true;
      this.waiter?.();
    });
  }

  /** Sends a lookup and resolves with its answer's head (status line and headers, lower-cased) once its body is in. */
  async lookup(): Promise<{ status: number; headers: Map<string, string> }> {
    const body = JSON.stringify({ features: ["driver_hourly_stats:city"], entities: [{ driver_id: 1001 }] });
    this.socket.write(`POST /v1/lookup HTTP/1.1\r\nHost: quiver\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    for (;;) {
      const end = this.buffered.indexOf("\r\n\r\n");
      if (end >= 0) {
        const lines = this.buffered.slice(0, end).split("\r\n");
        const headers = new Map(lines.slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
        const length = Number(headers.get("content-length") ?? Number.NaN);
        if (Number.isFinite(length) && this.buffered.length >= end + 4 + length) {
          this.buffered = this.buffered.slice(end + 4 + length);
          return { status: Number(lines[0]!.split(" ")[1]), headers };
        }
      }
      if (this.closed) throw new Error(`connection closed before an answer: ${JSON.stringify(this.buffered)}`);
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  /** Resolves once the server has closed the connection. */
  async whenClosed(): Promise<void> {
    while (!this.closed) await new Promise<void>((resolve) => (this.waiter = resolve));
  }
}

test("during --shutdown-delay answers close kept-alive connections, and a second SIGTERM drains at once", async () => {
  // A delay no machine runs out of before the test's steps: the second SIGTERM ends it.
  const p = await startQuiver(["--demo-entities", "10", "--grpc-port", "-1", "--shutdown-delay", "600s"]);
  procs.push(p);
  const kept = new RawConnection(p.url);
  const before = await kept.lookup();
  expect(before.status).toBe(200);
  expect(before.headers.get("connection")).toBeUndefined();

  p.proc.kill("SIGTERM");
  let unready = false;
  while (!unready) {
    unready = (await fetch(`${p.url}/readyz`)).status === 503;
    if (!unready) await Bun.sleep(20);
  }
  // Still served, and told to go: its client opens its next request elsewhere instead of meeting a reset when the
  // listener closes (a Service keeps an established connection on this pod whatever its readiness says).
  const during = await kept.lookup();
  expect(during.status).toBe(200);
  expect(during.headers.get("connection")).toBe("close");
  await kept.whenClosed();

  p.proc.kill("SIGTERM");
  expect(await p.proc.exited).toBe(0);
  expect(p.output()).toContain("SIGTERM again, draining now (--shutdown-delay cut short)");
}, 60_000);

test("SIGTERM ends an open LookupStream cleanly once what it read is answered, instead of holding the drain until it is dropped", async () => {
  const p = await startQuiver(["--demo-entities", "10"]);
  procs.push(p);
  const c = grpcConnect(p.grpcAddress!);
  const call = (c.quiver as unknown as { LookupStream(): grpc.ClientDuplexStream<unknown, { id: string; error: unknown }> }).LookupStream();
  const answers: { id: string; error: unknown }[] = [];
  const status = new Promise<{ code: number; details: string }>((resolve) => {
    call.on("data", (a) => answers.push(a));
    call.on("status", resolve);
    call.on("error", () => {});
  });
  const lookup = (id: string) => ({ features: ["driver_hourly_stats:city"], entities: [{ name: "driver_id", int64_values: ["1001"] }], id });
  call.write(lookup("1"));
  while (answers.length === 0) await Bun.sleep(10);
  // The client keeps its stream open (it has not half-closed), idle, as a long-lived caller's is.
  p.proc.kill("SIGTERM");
  // Before: the drain waited its whole 10 s grace for the stream, then the connection was dropped
  // ("14 UNAVAILABLE: Connection dropped"). Now the server ends it with a status saying why.
  const end = await status;
  expect(end.code).toBe(14);
  expect(end.details).toBe("the server is shutting down; open the stream again");
  expect(answers.map((a) => [a.id, a.error])).toEqual([["1", null]]);
  expect(await p.proc.exited).toBe(0);
  c.close();
}, 60_000);
