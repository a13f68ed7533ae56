import { expect, test } from "bun:test";
import { SCAN_RESTARTS, scanPasses } from "./scan-passes.ts";
import { ScanRestartError, ShardUnavailableError } from "./storage-errors.ts";

const restart = () => new ScanRestartError("127.0.0.1:6379", "a".repeat(40), "b".repeat(40));

test("a pass whose cursor's process changed is run again from the start; the whole pass's answer is returned", async () => {
  let runs = 0;
  const heard: number[] = [];
  const got = await scanPasses(
    async () => {
      runs++;
      if (runs < 3) throw restart();
      return "complete";
    },
    (e, n) => {
      expect(e.code).toBe("scan_restart");
      heard.push(n);
    },
  );
  expect(got).toBe("complete");
  expect(runs).toBe(3);
  expect(heard).toEqual([1, 2]);
});

test("after SCAN_RESTARTS restarts in a row the error is thrown, as a shard that does not answer fails the scan", async () => {
  let runs = 0;
  const error = await scanPasses(async () => {
    runs++;
    throw restart();
  }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ScanRestartError);
  expect(runs).toBe(SCAN_RESTARTS + 1);
});

test("any other error ends the scan at once: no pass is run again", async () => {
  let runs = 0;
  const error = await scanPasses(async () => {
    runs++;
    throw new ShardUnavailableError("s1", "scan: no primary known");
  }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ShardUnavailableError);
  expect(runs).toBe(1);
});

test("ScanRestartError is a storage error that says so: code scan_restart, not retryable (the same cursor never works again)", () => {
  const e = restart();
  expect(e.code).toBe("scan_restart");
  expect(e.retryable).toBe(false);
  expect(e.issuedBy).toBe("a".repeat(40));
  expect(e.answeredBy).toBe("b".repeat(40));
  expect(e.message).toContain("127.0.0.1:6379");
});
