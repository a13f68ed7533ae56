import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadSourcesFile } from "../src/ingest/index.ts";
import { eventually, makeRig } from "./stream-source-contract.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * The producer and dead-letter CLIs as an operator runs them: the producer's
 * shares of duplicates, late and malformed events come out as the consumer's
 * counts; `list` shows every dead letter, `replay` puts them back.
 */
const ROOT = resolve(import.meta.dir, "..");
const dir = mkdtempSync(join(tmpdir(), "quiver-ingest-cli-"));
let redis: RedisProcess;

beforeAll(async () => {
  redis = await startRedis();
  const example = await Bun.file("src/ingest/example-sources.yaml").text();
  writeFileSync(join(dir, "sources.yaml"), example.replace("redis://127.0.0.1:6379", `redis://${redis.address}`));
}, 60_000);

afterAll(async () => {
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

async function run(args: string[]): Promise<string> {
  const p = Bun.spawn([process.execPath, ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  if ((await p.exited) !== 0) throw new Error(`${args.join(" ")} failed: ${err}`);
  return out;
}

test("producer shares become consumer counts; dead letters are listed and replayed by the CLI", async () => {
  const sourcesPath = join(dir, "sources.yaml");
  const produced = JSON.parse(
    await run(["src/ingest/produce.ts", "--sources", sourcesPath, "--source", "payments_redis", "--count", "400", "--rate", "2000", "--duplicates", "0.1", "--late", "0.1", "--malformed", "0.1", "--entities", "1000000"]),
  ) as { sent: number; kinds: { fresh: number; duplicate: number; late: number; malformed: number } };
  expect(produced.sent).toBe(400);
  expect(produced.kinds.malformed).toBeGreaterThan(0);
  expect(produced.kinds.duplicate).toBeGreaterThan(0);

  const rig = await makeRig();
  const sources = (await loadSourcesFile(sourcesPath, rig.registry)).filter((s) => s.name === "payments_redis");
  const ingest = await rig.start(sources);
  try {
    await eventually("all 400 handled", () => {
      const s = ingest.status()[0]!;
      return s.written + s.duplicate + s.late + s.deadLettered === 400;
    });
    const s = ingest.status()[0]!;
    expect(s.deadLettered).toBe(produced.kinds.malformed);
    // Re-sends carry an event id already seen; with a million ids fresh events never collide.
    expect(s.duplicate).toBe(produced.kinds.duplicate);
    expect(s.written).toBe(produced.kinds.fresh + produced.kinds.late);
  } finally {
    await ingest.stop();
  }

  const listed = (await run(["src/ingest/dead-letters-cli.ts", "list", "--sources", sourcesPath, "--source", "payments_redis", "--limit", "1000"]))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { reason: string; path: string; source: string });
  expect(listed.length).toBe(produced.kinds.malformed);
  for (const l of listed) {
    expect(l.source).toBe("payments_redis");
    expect(["undecodable", "invalid_value"]).toContain(l.reason);
  }
  const undecodable = listed.filter((l) => l.reason === "undecodable").length;
  const replayed = JSON.parse(await run(["src/ingest/dead-letters-cli.ts", "replay", "--sources", sourcesPath, "--source", "payments_redis", "--reason", "undecodable", "--limit", "1000"])) as {
    replayed: number;
  };
  expect(replayed.replayed).toBe(undecodable);
  const left = (await run(["src/ingest/dead-letters-cli.ts", "list", "--sources", sourcesPath, "--source", "payments_redis", "--limit", "1000"])).trim().split("\n").filter(Boolean);
  expect(left.length).toBe(produced.kinds.malformed - undecodable);
  // A mistyped reason matched nothing and exited 0 (replayed 0): now refused, naming the reasons; as is an unknown option.
  await expect(run(["src/ingest/dead-letters-cli.ts", "replay", "--sources", sourcesPath, "--source", "payments_redis", "--reason", "invalid-value"])).rejects.toThrow(
    '--reason: expected one of undecodable, missing_field, invalid_value, delivery_limit, too_large, got "invalid-value"',
  );
  await expect(run(["src/ingest/dead-letters-cli.ts", "list", "--sources", sourcesPath, "--sourc", "payments_redis"])).rejects.toThrow('unknown option "--sourc"');
  expect((await run(["src/ingest/dead-letters-cli.ts", "list", "--sources", sourcesPath, "--source", "payments_redis", "--limit", "1000"])).trim().split("\n").filter(Boolean).length).toBe(left.length);
}, 120_000);
