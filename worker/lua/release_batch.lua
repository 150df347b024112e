-- Give claimed jobs that never started back to waiting, as if never claimed.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id, claims prefix .. 'claim:' .. id)
-- KEYS[2] active  KEYS[3] waiting  KEYS[4] wake
-- ARGV[1] n, then 2 per job: id, token
-- Returns how many jobs went back to waiting.
--
--   token == GET claim:<id> -> DEL claim:<id>, ZREM active, waiting at its original place
--   LPUSH wake 1; LTRIM wake 0 0 when any went back
--
-- Why: a worker told to stop (drain, RSS limit, fenced) may hold claimed jobs it has not
-- started. Releasing them now lets another worker run them at once instead of after the
-- lease expires. The job hash needs no change: a claim never wrote it, so it still says
-- waiting with the attempts of before the claim, and the attempt is not counted because
-- the handler never ran.
local prefix, active, waiting, wake = unpack(KEYS)
local n = tonumber(ARGV[1])
local BAND = 4398046511104

local keys = {}
for i = 1, n do keys[i] = prefix .. 'claim:' .. ARGV[i * 2] end
local current = {}
-- unpack is bounded by Lua's C stack (8000 slots): pass at most 4000 arguments at a time.
for i = 1, n, 4000 do
  local part = redis.call('MGET', unpack(keys, i, math.min(i + 3999, n)))
  for j = 1, #part do current[i + j - 1] = part[j] end
end

local ids, scored, spent, count = {}, {}, {}, 0
for i = 1, n do
  local id = ARGV[i * 2]
  if current[i] == ARGV[i * 2 + 1] and not spent[id] then
    spent[id] = true
    count = count + 1
    ids[count] = id
    keys[count] = keys[i]
    local priority = redis.call('HGET', prefix .. 'job:' .. id, 'priority')
    scored[count * 2 - 1], scored[count * 2] = ((tonumber(priority) or 0) + 1000) * BAND + id, id
  end
end
if count > 0 then
  for i = 1, count, 4000 do
    redis.call('DEL', unpack(keys, i, math.min(i + 3999, count)))
    redis.call('ZREM', active, unpack(ids, i, math.min(i + 3999, count)))
  end
  for i = 1, count * 2, 4000 do
    redis.call('ZADD', waiting, unpack(scored, i, math.min(i + 3999, count * 2)))
  end
  redis.call('LPUSH', wake, 1)
  redis.call('LTRIM', wake, 0, 0)
end
return count
