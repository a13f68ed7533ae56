import { afterAll } from "bun:test";
import { killLeftovers } from "./live-processes.ts";

// Preloaded for every `bun test` run (bunfig.toml): once all files have run, no test server outlives it. A
// process-exit handler cannot do this (bun test's runner does not emit `exit`): a CI run left three redis-servers.
afterAll(() => {
  const killed = killLeftovers();
  if (killed > 0) console.error(`test servers left running by their tests: ${killed}, killed`);
});
