/**
 * L2 fill and write-through, atomic inside Redis: KEYS[i] takes ARGV[i]
 * (row-codec bytes; a negative entry is the 8-byte header alone, event time
 * -Infinity; a floor the header alone at its event time) with a TTL of
 * ARGV[n + i] ms, unless the stored copy's event time is newer. The same
 * compare-event-time rule as the shards (src/kv/redis-lww-script.ts), so a
 * late fill never overwrites a newer row that a write-through already put
 * there. Equal times refresh the TTL, unless ARGV[2n + 1] is "1" (floors: a
 * row of the floor's own time is the origin's row and stays). Returns the
 * number of keys written.
 */
export const L2_FILL_LUA = `
local n = #KEYS
local keepEqual = ARGV[2 * n + 1] == '1'
local written = 0
for i = 1, n do
  local incoming = ARGV[i]
  local current = redis.call('GET', KEYS[i])
  local keep = false
  if current and string.len(current) >= 8 then
    local held = struct.unpack('>d', current)
    local given = struct.unpack('>d', incoming)
    keep = held > given or (keepEqual and held == given)
  end
  if not keep then
    redis.call('SET', KEYS[i], incoming, 'PX', ARGV[n + i])
    written = written + 1
  end
end
return written
`;

/**
 * Bumps one generation (HASH KEYS[1], field ARGV[1]) past both what L2 holds
 * and what the caller uses (ARGV[2]), and answers it. A plain HINCRBY after
 * L2 lost the hash (a flush, a restart without persistence) went back to 1
 * while the pods kept the higher generation they had: the invalidation
 * changed nothing they read.
 */
export const GENERATION_BUMP_LUA = `
local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') or 0
local known = tonumber(ARGV[2]) or 0
local nextGen = math.max(stored, known) + 1
redis.call('HSET', KEYS[1], ARGV[1], nextGen)
return nextGen
`;

/**
 * Notes the L2 server's run id (KEYS[2]) and, when another one was noted,
 * bumps the generation of everything (HASH KEYS[1], field "*") past both what
 * L2 holds and what the caller uses (ARGV[2]); answers the "*" generation.
 * A server restarted from its own files, or a replica promoted in a failover,
 * holds the run id noted before (a key like any other) but runs under a new
 * one, and may hold copies older than writes acknowledged before: the first
 * pod to connect abandons every entry it holds. Atomic, so the pods
 * connecting after it find the run id noted and bump nothing. No run id noted
 * (a new L2, one restarted empty, or the key evicted by allkeys-lru) bumps
 * nothing: an empty L2 holds nothing old, and a bump there reached only the
 * pod that made it (the others, still connected, kept the old generation and
 * read under it what the new one's writes superseded).
 */
export const RUN_CHECK_LUA = `
local noted = redis.call('GET', KEYS[2])
if noted == ARGV[1] then
  return tonumber(redis.call('HGET', KEYS[1], '*') or '0') or 0
end
redis.call('SET', KEYS[2], ARGV[1])
local stored = tonumber(redis.call('HGET', KEYS[1], '*') or '0') or 0
if not noted then
  return stored
end
local known = tonumber(ARGV[2]) or 0
local nextGen = math.max(stored, known) + 1
redis.call('HSET', KEYS[1], '*', nextGen)
return nextGen
`;

/**
 * A pod's generations against L2's (L2Store.exchangeGenerations: each
 * re-read, and the check every second): raises those L2 holds lower than
 * the caller's (ARGV from 2: field, generation pairs) — L2 lost them (a
 * flush, a restart without persistence, an eviction), and pods that start
 * afterwards must read the ones in use — notes the server's run id (ARGV[1],
 * when known) if none is noted, and answers the hash (HGETALL) for the
 * caller to take any higher ones. Read every second, both keys stay among
 * the most recently used, so allkeys-lru does not pick them: untouched
 * between invalidations, they were what it evicted first, and a pod started
 * then read and wrote under generation 0 while the others used theirs.
 */
export const GENERATION_CHECK_LUA = `
if ARGV[1] ~= '' and not redis.call('GET', KEYS[2]) then
  redis.call('SET', KEYS[2], ARGV[1])
end
for i = 2, #ARGV, 2 do
  local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0') or 0
  local gen = tonumber(ARGV[i + 1])
  if gen and gen > stored then
    redis.call('HSET', KEYS[1], ARGV[i], gen)
  end
end
return redis.call('HGETALL', KEYS[1])
`;
