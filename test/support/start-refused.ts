import { expect } from "bun:test";
import type { Quiver } from "../../src/app.ts";
import { QuiverError } from "../../src/errors/index.ts";

/** The QuiverError a start that must be refused throws (a server that starts anyway is closed, and the test fails). */
export async function startRefused(start: () => Promise<Quiver>): Promise<QuiverError> {
  const error = await start().then(
    async (q) => {
      await q.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(QuiverError);
  return error as QuiverError;
}
