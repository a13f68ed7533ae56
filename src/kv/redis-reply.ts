/**
 * A Redis reply that lists names and values in turn (XINFO, SENTINEL
 * REPLICAS, CONFIG GET, ...) as a map; a trailing name without a value is
 * dropped.
 */
export function replyFields(reply: readonly unknown[]): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (let i = 0; i + 1 < reply.length; i += 2) out.set(String(reply[i]), reply[i + 1]);
  return out;
}
