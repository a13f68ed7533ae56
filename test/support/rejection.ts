/**
 * What `p` rejects with (undefined if it resolves), awaited plainly. Use it
 * instead of `await expect(p).rejects…` / `.resolves…` for a promise that
 * settles through a worker's reply (the durable store's SQLite thread): Bun's
 * matchers do not wake on it when the test reached them from an earlier
 * worker reply (oven-sh/bun#37189, #43819, open on Bun 1.4.5), and the test
 * hangs to its timeout. The placement test "a move cut short" hung so.
 */
export function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}
