import { expect, test } from "bun:test";
import { SERVER_ENV } from "../bench/suites/measure.ts";

/**
 * The environment the server runs with by default: `npm start` (package.json),
 * the container image (deploy/Dockerfile) and the benches (bench/suites/measure.ts,
 * which measure the server as npm start runs it) give it the same variables.
 */
test("npm start, the image and the benches run the server with the same environment (Bun's GC timer off)", async () => {
  const pkg = (await Bun.file("package.json").json()) as { scripts: Record<string, string> };
  const start = pkg.scripts.start!;
  const prefix = Object.entries(SERVER_ENV).map(([k, v]) => `${k}=${v} `).join("");
  // exec: the shell npm runs the script in is replaced by bun, so npm's SIGTERM reaches the server (dash did not pass it on).
  expect(start).toBe(`${prefix}exec bun src/main.ts`);
  expect(SERVER_ENV).toEqual({ BUN_GC_TIMER_DISABLE: "1" });
  const dockerfile = await Bun.file("deploy/Dockerfile").text();
  for (const [k, v] of Object.entries(SERVER_ENV)) expect(dockerfile).toMatch(new RegExp(`^\\s*${k}=${v} \\\\$`, "m"));
});
