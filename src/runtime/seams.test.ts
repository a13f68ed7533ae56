import { expect, test } from "bun:test";
import { Glob } from "bun";

/**
 * The core runs on any runtime with Node's modules: Bun-only APIs (the `Bun`
 * global, `bun:*` modules, `import.meta.dir`) appear only in src/runtime/ (the
 * adapters) and in the entry points, which a Deno entry point would replace.
 */
const ENTRY_POINTS = new Set(["main.ts", "ingest/cli.ts"]);
const BUN_ONLY = [/\bBun\.[a-zA-Z]/, /["']bun:[a-z]+["']/, /\bfrom\s+["']bun["']/, /import\.meta\.(dir|main|path)\b/];

/** The code without comments (block and line), so prose that names an API does not count. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
}

test("Bun-only APIs stay in src/runtime/ and the entry points", async () => {
  const offenders: string[] = [];
  for await (const path of new Glob("**/*.ts").scan({ cwd: "src" })) {
    if (path.endsWith(".test.ts") || path.startsWith("runtime/") || ENTRY_POINTS.has(path)) continue;
    const lines = code(await Bun.file(`src/${path}`).text()).split("\n");
    lines.forEach((line, i) => {
      if (BUN_ONLY.some((re) => re.test(line))) offenders.push(`src/${path}:${i + 1}: ${line.trim()}`);
    });
  }
  expect(offenders).toEqual([]);
});

test("the check sees what it looks for", () => {
  expect(BUN_ONLY.some((re) => re.test(code('const { Database } = await import("bun:sqlite");')))).toBe(true);
  expect(BUN_ONLY.some((re) => re.test(code("await Bun.sleep(5);")))).toBe(true);
  expect(BUN_ONLY.some((re) => re.test(code("/** Bun.serve's routes */ const x = 1;")))).toBe(false);
  expect(BUN_ONLY.some((re) => re.test(code("const y = 2; // Bun.gc here")))).toBe(false);
});
