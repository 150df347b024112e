-- Give claimed jobs that never started back to waiting, as if never claimed.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id)
-- KEYS[2] active  KEYS[3] waiting  KEYS[4] wake
-- ARGV[1] n, then 2 per job: id, token
-- Returns how many jobs went back to waiting.
--
--   token == job.token and state == active -> waiting at its original place, attempts-1,
--                                             token cleared
--   LPUSH wake 1; LTRIM wake 0 0 when any went back
--
-- Why: a worker told to stop (drain, RSS limit, fenced) may hold claimed jobs it has not
-- started. Releasing them now lets another worker run them at once instead of after the
-- lease expires, and the attempt is not counted because the handler never ran.
local prefix, active, waiting, wake = unpack(KEYS)
local n = tonumber(ARGV[1])
local BAND = 4398046511104

local ids, scored, count = {}, {}, 0
for i = 1, n do
  local id = ARGV[i * 2]
  local job = prefix .. 'job:' .. id
  local f = redis.call('HMGET', job, 'token', 'state', 'attempts', 'priority')
  if f[1] == ARGV[i * 2 + 1] and f[2] == 'active' then
    redis.call('HSET', job, 'state', 'waiting', 'token', '',
               'attempts', math.max((tonumber(f[3]) or 1) - 1, 0))
    count = count + 1
    ids[count] = id
    scored[count * 2 - 1], scored[count * 2] = ((tonumber(f[4]) or 0) + 1000) * BAND + id, id
  end
end
if count > 0 then
  -- unpack is bounded by Lua's C stack (8000 slots): pass at most 4000 arguments at a time.
  for i = 1, count, 4000 do
    redis.call('ZREM', active, unpack(ids, i, math.min(i + 3999, count)))
  end
  for i = 1, count * 2, 4000 do
    redis.call('ZADD', waiting, unpack(scored, i, math.min(i + 3999, count * 2)))
  end
  redis.call('LPUSH', wake, 1)
  redis.call('LTRIM', wake, 0, 0)
end
return count
