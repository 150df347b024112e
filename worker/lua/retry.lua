-- Give a dead job another full set of attempts.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id, claims prefix .. 'claim:' .. id)
-- KEYS[2] dead  KEYS[3] waiting  KEYS[4] idem  KEYS[5] wake
-- ARGV[1] id
-- Returns 1 when the job is waiting again, 0 when there is no such job; error "LK job
-- 'ID' is <state>, only dead jobs can be retried" otherwise.
--
--   dead -> waiting at its original place; attempts 0, stalls 0, last error kept
--   HSETNX idem key id: the key is taken back only if no newer job holds it
--   LPUSH wake 1; LTRIM wake 0 0
--
-- Why the key is taken back only when free: going dead freed it, and a resubmit may since
-- have created a new job under it; two live jobs must never share one key.
local prefix, dead, waiting, idem, wake = unpack(KEYS)
local id = ARGV[1]
local job = prefix .. 'job:' .. id
local f = redis.call('HMGET', job, 'state', 'priority', 'idem')
local state = f[1]
if not state then return 0 end
-- A claimed job is active whatever its hash says: a claim does not write the hash.
if redis.call('EXISTS', prefix .. 'claim:' .. id) == 1 then state = 'active' end
if state ~= 'dead' then
  return redis.error_reply("LK job '" .. id .. "' is " .. state ..
                           ', only dead jobs can be retried')
end

redis.call('HSET', job, 'state', 'waiting', 'attempts', 0, 'stalls', 0)
redis.call('HDEL', job, 'finished_ms')
if f[3] then redis.call('HSETNX', idem, f[3], id) end
redis.call('ZREM', dead, id)
redis.call('ZADD', waiting, ((tonumber(f[2]) or 0) + 1000) * 4398046511104 + id, id)
redis.call('LPUSH', wake, 1)
redis.call('LTRIM', wake, 0, 0)
return 1
