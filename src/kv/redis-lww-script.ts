import { createHash } from "node:crypto";

/**
 * Last-write-wins batch put, run atomically inside Redis so concurrent writers,
 * retries and out-of-order events can never regress a value.
 *
 * KEYS[i] receives ARGV[i] (row-codec bytes) only when the incoming event time
 * (bytes 0..8, float64 big-endian) is strictly newer than the stored one.
 * Keys are processed in order, so a key repeated in one batch competes with
 * the earlier entry exactly like two separate writes would.
 * Returns { written, ignored }.
 */
export const LWW_PUT_LUA = `
local written, ignored = 0, 0
for i = 1, #KEYS do
  local incoming = ARGV[i]
  local current = redis.call('GET', KEYS[i])
  if current and string.len(current) >= 8
     and struct.unpack('>d', current) >= struct.unpack('>d', incoming) then
    ignored = ignored + 1
  else
    redis.call('SET', KEYS[i], incoming)
    written = written + 1
  end
end
return { written, ignored }
`;

/** SHA1 of the script, for EVALSHA (one script call per batch). */
export const LWW_PUT_SHA = createHash("sha1").update(LWW_PUT_LUA).digest("hex");

/** Escapes Redis glob characters so a key prefix matches literally in SCAN MATCH. */
export function globEscape(prefix: string): string {
  return prefix.replace(/[\\*?[\]]/g, "\\$&");
}
