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
 * Lua shared by the scripts that place what the origin acknowledged: KEYS[1]
 * the generations hash, `callerAll` the caller's "*" generation.
 * `prefixes(view, callerGen)` answers the view's key prefix under the
 * caller's generations, and under the higher of L2's and the caller's for
 * each when that differs (else false); looked up once per view per call.
 */
const ACKNOWLEDGED_PREFIXES_LUA = `
local all = math.max(tonumber(redis.call('HGET', KEYS[1], '*') or '0') or 0, callerAll)
local ownPrefix, newerPrefix = {}, {}
local function prefixes(view, callerGen)
  if ownPrefix[view] == nil then
    local gen = math.max(tonumber(redis.call('HGET', KEYS[1], view) or '0') or 0, callerGen)
    ownPrefix[view] = 'qc|' .. string.format('%d', callerAll) .. '.' .. string.format('%d', callerGen) .. '|'
    newerPrefix[view] = (gen ~= callerGen or all ~= callerAll) and ('qc|' .. string.format('%d', all) .. '.' .. string.format('%d', gen) .. '|') or false
  end
  return ownPrefix[view], newerPrefix[view]
end
`;

/**
 * L2_FILL_LUA's rule for writes the origin acknowledged (write-throughs and
 * floors), under the generations L2 holds now as well as the caller's:
 * KEYS[1] the generations hash; ARGV[1] the entry count n, ARGV[2] "1" to
 * keep equal times (floors), ARGV[3] the caller's "*" generation, then five
 * per entry: storage key, its view, the caller's generation of that view,
 * value, TTL (ms). Each entry goes to `qc|<all>.<view>|<storage key>`
 * (L2Store.keyOf) under the caller's generations, and also under the higher
 * of L2's and the caller's for each when that differs: another pod's
 * invalidation that has not reached the caller yet (its generation lags)
 * moved the others' reads there. Under the caller's alone, a write through a
 * lagging pod missed the key the others read, where a copy of the row it
 * replaced stayed for the L2 TTL; under L2's alone, the writer's own next
 * read (under its old generation until it takes the new one) missed it.
 * A hash L2 lost (lower than the caller's) changes nothing. Fills (rows a
 * read found) keep the caller's alone: a read before an invalidation must
 * not land under the generation that hides what it read. Returns the number
 * of keys written.
 */
export const L2_WRITE_THROUGH_LUA = `
local n = tonumber(ARGV[1])
local keepEqual = ARGV[2] == '1'
local function put(key, incoming, ttl)
  local current = redis.call('GET', key)
  if current and string.len(current) >= 8 then
    local held = struct.unpack('>d', current)
    local given = struct.unpack('>d', incoming)
    if held > given or (keepEqual and held == given) then return 0 end
  end
  redis.call('SET', key, incoming, 'PX', ttl)
  return 1
end
local callerAll = tonumber(ARGV[3]) or 0
${ACKNOWLEDGED_PREFIXES_LUA}
local written = 0
for i = 0, n - 1 do
  local at = 4 + i * 5
  local own, newer = prefixes(ARGV[at + 1], tonumber(ARGV[at + 2]) or 0)
  written = written + put(own .. ARGV[at], ARGV[at + 3], ARGV[at + 4])
  if newer then put(newer .. ARGV[at], ARGV[at + 3], ARGV[at + 4]) end
end
return written
`;

/**
 * Removals the origin acknowledged (deletes, and repairs of write-throughs
 * L2 missed), placed as L2_WRITE_THROUGH_LUA places writes: KEYS[1] the
 * generations hash; ARGV[1] the caller's "*" generation, then three per key:
 * storage key, its view, the caller's generation of that view. Each key is
 * removed under the caller's generations and under L2's newer ones. Removed
 * under the caller's alone, a delete through a pod that had not taken
 * another's invalidation yet left the copy the others had filled under the
 * new generation, and every pod without a floor of its own served the
 * deleted row for the L2 TTL (test/cache-l2.test.ts). Returns the number of
 * keys removed under the caller's generations.
 */
export const L2_REMOVE_LUA = `
local callerAll = tonumber(ARGV[1]) or 0
${ACKNOWLEDGED_PREFIXES_LUA}
local removed = 0
for at = 2, #ARGV, 3 do
  local own, newer = prefixes(ARGV[at + 1], tonumber(ARGV[at + 2]) or 0)
  removed = removed + redis.call('DEL', own .. ARGV[at])
  if newer then redis.call('DEL', newer .. ARGV[at]) end
end
return removed
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
