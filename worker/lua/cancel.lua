-- Cancel a job that has not finished.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id, claims prefix .. 'claim:' .. id)
-- KEYS[2] waiting  KEYS[3] delayed  KEYS[4] active  KEYS[5] cancelled  KEYS[6] idem
-- ARGV[1] id
-- Returns 1 when cancelled, 0 when there is no such job; error "LK job 'ID' is already
-- <state>" for a completed, dead or cancelled job.
--
--   waiting | delayed | active -> cancelled: ZREM from its set, ZADD cancelled, claim
--                                 deleted (its attempt and start time kept in the job
--                                 hash), idempotency key freed
--
-- A job is active while claim:<id> exists, whatever its hash says (a claim does not write
-- the hash). Why deleting the claim is enough for an active job: the worker running it
-- learns at its next lease renewal (refused) and stops the handler, and its late Finish is
-- refused too, so the cancellation cannot be overwritten by a completion.
local prefix, waiting, delayed, active, cancelled, idem = unpack(KEYS)
local id = ARGV[1]
local job = prefix .. 'job:' .. id
local claim = prefix .. 'claim:' .. id
local f = redis.call('HMGET', job, 'state', 'idem')
local state = f[1]
if not state then return 0 end
local token = redis.call('GET', claim)
if token then state = 'active' end
local from = ({waiting = waiting, delayed = delayed, active = active})[state]
if not from then return redis.error_reply("LK job '" .. id .. "' is already " .. state) end

local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('HSET', job, 'state', 'cancelled', 'finished_ms', now)
if token then
  local attempts, started = string.match(token, '^(%d+):(%d+):')
  if attempts then redis.call('HSET', job, 'attempts', attempts, 'started_ms', started) end
  redis.call('DEL', claim)
end
redis.call('ZREM', from, id)
redis.call('ZADD', cancelled, now, id)
if f[2] and redis.call('HGET', idem, f[2]) == id then redis.call('HDEL', idem, f[2]) end
return 1
