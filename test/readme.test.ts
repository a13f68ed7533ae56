import { expect, test } from "bun:test";
import { SETTINGS } from "../src/config/config.ts";

const readme = await Bun.file("README.md").text();

test("README's configuration table lists every setting with its flag, variable and default", () => {
  for (const s of SETTINGS) {
    const row = `| \`${s.flag}\` | \`${s.env}\` | \`${s.default === "" ? "(empty)" : s.default}\` |`;
    expect(readme).toContain(row);
  }
});

test("README's npm commands exist in package.json", async () => {
  const pkg = (await Bun.file("package.json").json()) as { scripts: Record<string, string> };
  for (const m of readme.matchAll(/npm run ([a-z:-]+)/g)) expect(Object.keys(pkg.scripts)).toContain(m[1]!);
  expect(pkg.scripts.start).toBeDefined();
  expect(pkg.scripts.test).toBeDefined();
});
