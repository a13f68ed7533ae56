import { expect, test } from "bun:test";
import type { MigrationProgress } from "../src/shard/rebalance.ts";
import { formatProgress, migrationUrl, watchMigration } from "./migration-watch.ts";

const progress = (over: Partial<MigrationProgress>): MigrationProgress => ({
  state: "running",
  from: ["a", "b", "c"],
  to: ["a", "b", "c", "d"],
  scannedKeys: 50_000,
  movedKeys: 12_500,
  copiedRows: 12_500,
  newerAtDestination: 0,
  deletedKeys: 12_500,
  recopiedKeys: 0,
  retriedPages: 0,
  rescans: 0,
  totalKeys: 100_000,
  fraction: 0.5,
  movedFraction: 0.125,
  sources: {},
  error: null,
  ...over,
});

test("the progress line shows a bar, the percentage and the counters", () => {
  expect(formatProgress(progress({}), 10)).toBe("[#####-----]  50%  50000/100000 scanned  12500 moved (12.5%)  running");
  expect(formatProgress(progress({ state: "failed", error: "boom", totalKeys: null, fraction: 0 }), 4)).toBe(
    "[----]   0%  50000/? scanned  12500 moved (12.5%)  failed: boom",
  );
  expect(formatProgress(progress({ retriedPages: 2 }), 10)).toBe("[#####-----]  50%  50000/100000 scanned  12500 moved (12.5%)  2 page(s) retried  running");
  expect(formatProgress(progress({ rescans: 1 }), 10)).toBe("[#####-----]  50%  50000/100000 scanned  12500 moved (12.5%)  1 source scan(s) restarted  running");
});

test("watching polls the server until the migration is done", async () => {
  const answers = [progress({}), progress({ state: "done", fraction: 1, scannedKeys: 100_000, movedKeys: 25_000, movedFraction: 0.25 })];
  let calls = 0;
  let auth = "";
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      auth = req.headers.get("authorization") ?? "";
      return Response.json(answers[Math.min(calls++, answers.length - 1)]);
    },
  });
  try {
    let out = "";
    const last = await watchMigration({ url: `http://127.0.0.1:${server.port}/`, token: "t0k", intervalMs: 5, write: (t) => (out += t) });
    expect(last?.state).toBe("done");
    expect(calls).toBe(2);
    expect(auth).toBe("Bearer t0k");
    expect(out).toContain("100%");
  } finally {
    server.stop(true);
  }
});

test("a bad --url is refused naming the flag; an unreachable server is named", async () => {
  expect(migrationUrl("http://127.0.0.1:6566")).toBe("http://127.0.0.1:6566/admin/topology/migration");
  expect(migrationUrl("http://h:1/admin/topology/migration")).toBe("http://h:1/admin/topology/migration");
  expect(() => migrationUrl("notaurl")).toThrow('--url: expected the server\'s http(s) URL, as http://127.0.0.1:6566, got "notaurl"');
  expect(() => migrationUrl("ftp://x/")).toThrow('--url: expected an http: or https: URL, got "ftp://x/" (ftp:)');
  // A port nothing listens on: one a server just gave back.
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
  const url = `http://127.0.0.1:${server.port}/admin/topology/migration`;
  server.stop(true);
  await expect(watchMigration({ url, write: () => undefined })).rejects.toThrow(`${url}: `);
});

test("the CLI answers a bad --url with a usage error naming it", async () => {
  const cli = new URL("./cli.ts", import.meta.url).pathname;
  const proc = Bun.spawn([process.execPath, cli, "migration", "--url", "notaurl"], { stdout: "pipe", stderr: "pipe" });
  const err = await new Response(proc.stderr).text();
  expect([await proc.exited, err.trim()]).toEqual([2, '--url: expected the server\'s http(s) URL, as http://127.0.0.1:6566, got "notaurl"']);
});
