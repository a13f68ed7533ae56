/**
 * L2 fill and write-through, atomic inside Redis: KEYS[i] takes ARGV[i]
 * (row-codec bytes; a negative entry is the 8-byte header alone, event time
 * -Infinity) with a TTL of ARGV[n + i] ms, unless the stored copy's event
 * time is newer. The same compare-event-time rule as the shards
 * (src/kv/redis-lww-script.ts), so a late fill never overwrites a newer row
 * that a write-through already put there. Equal times refresh the TTL.
 * Returns the number of keys written.
 */
export const L2_FILL_LUA = `
local n = #KEYS
local written = 0
for i = 1, n do
  local incoming = ARGV[i]
  local current = redis.call('GET', KEYS[i])
  if not (current and string.len(current) >= 8
     and struct.unpack('>d', current) > struct.unpack('>d', incoming)) then
    redis.call('SET', KEYS[i], incoming, 'PX', ARGV[n + i])
    written = written + 1
  end
end
return written
`;
