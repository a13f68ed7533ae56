import { expect, test } from "bun:test";
import { owned, runInterruptCleanups } from "./processes.ts";

test("a child wrapped by owned() is stopped by the runner's SIGINT/SIGTERM cleanups; one that ended is forgotten", async () => {
  // A load driver left running after the bench was stopped with SIGTERM (its parent gone, it ran to its own end).
  const child = owned(Bun.spawn(["sleep", "30"], { stdout: "ignore", stderr: "ignore" }));
  const done = owned(Bun.spawn(["true"], { stdout: "ignore", stderr: "ignore" }));
  await done.exited;
  await runInterruptCleanups();
  expect(await child.exited).not.toBe(0);
  expect(child.signalCode).toBe("SIGTERM");
});
