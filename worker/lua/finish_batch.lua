-- Record how claimed jobs ended, then trim finished jobs past their retention.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id)
-- KEYS[2] active  KEYS[3] delayed  KEYS[4] completed  KEYS[5] dead  KEYS[6] cancelled
-- KEYS[7] idem
-- ARGV[1..4] keep_completed, completed_max_age_ms, keep_dead, dead_max_age_ms
-- ARGV[5] n, then 7 per job: id, token, success (1|0), result or error, retryable (1|0),
--         max_attempts override (0 = the job's own), backoff jitter factor
-- Returns {accepted1, accepted2, ...}: 1 recorded, 0 the claim was no longer valid.
--
--   token ~= job.token or state ~= active  -> refused (reclaimed after a stall, cancelled)
--   success                                -> completed, result kept
--   failure, attempts < limit, retryable   -> delayed until now + 2^(attempts-1) s * jitter
--   failure otherwise                      -> dead, error kept, idempotency key freed
--   then delete the oldest completed (and dead, and cancelled) jobs beyond the retention
--   count or age, at most TRIM_MAX per set per call
--
-- Why the token check: a job whose lease expired may be running again elsewhere; only the
-- current claim may record an outcome, so no job is completed twice. Why trimming here:
-- finishing is what makes the finished sets grow, so each call cleans up about as much as
-- it adds, and no timer is needed. The work is bounded to keep every call short.
local prefix, active, delayed, completed, dead, cancelled, idem = unpack(KEYS)
local n = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
-- Numbers passed to redis.call are formatted with %.17g, which costs as much as the call
-- itself; now is turned into text once.
local now_text = string.format('%d', now)
local jobs = prefix .. 'job:'
local TRIM_MAX = 1000

-- unpack is bounded by Lua's C stack (8000 slots): pass at most 4000 arguments at a time.
local function bulk(command, key, args, count)
  for i = 1, count, 4000 do
    redis.call(command, key, unpack(args, i, math.min(i + 3999, count)))
  end
end

local accepted, ended, done, buried, later = {}, {}, {}, {}, {}
local nended, ndone, nburied, nlater = 0, 0, 0, 0
for i = 1, n do
  local b = 5 + (i - 1) * 7
  local id = ARGV[b + 1]
  local job = jobs .. id
  local f = redis.call('HMGET', job, 'token', 'state')
  if f[1] ~= ARGV[b + 2] or f[2] ~= 'active' then
    accepted[i] = 0
  else
    accepted[i] = 1
    nended = nended + 1
    ended[nended] = id
    if ARGV[b + 3] == '1' then
      redis.call('HSET', job, 'state', 'completed', 'token', '', 'finished_ms', now_text,
                 'result', ARGV[b + 4])
      done[ndone + 1], done[ndone + 2] = now_text, id
      ndone = ndone + 2
    else
      -- Read only on failure: success, the hot path, needs nothing more.
      f = redis.call('HMGET', job, 'attempts', 'max_attempts', 'idem')
      local attempts = tonumber(f[1]) or 0
      local limit = tonumber(ARGV[b + 6])
      if limit <= 0 then limit = tonumber(f[2]) or 1 end
      if ARGV[b + 5] == '0' or attempts >= limit then
        redis.call('HSET', job, 'state', 'dead', 'token', '', 'finished_ms', now_text,
                   'error', ARGV[b + 4])
        -- Dead frees the key: resubmitting is how a caller asks for a fresh attempt.
        if f[3] and redis.call('HGET', idem, f[3]) == id then redis.call('HDEL', idem, f[3]) end
        buried[nburied + 1], buried[nburied + 2] = now_text, id
        nburied = nburied + 2
      else
        local run_at = now + math.floor(2 ^ (attempts - 1) * 1000 * tonumber(ARGV[b + 7]))
        redis.call('HSET', job, 'state', 'delayed', 'token', '', 'run_at_ms', run_at,
                   'error', ARGV[b + 4])
        later[nlater + 1], later[nlater + 2] = run_at, id
        nlater = nlater + 2
      end
    end
  end
end
bulk('ZREM', active, ended, nended)
bulk('ZADD', completed, done, ndone)
bulk('ZADD', dead, buried, nburied)
bulk('ZADD', delayed, later, nlater)

-- Both bounds select a prefix of the set (oldest first): trim the longer one. Only
-- completed jobs can still hold an idempotency key (dead and cancelled ones freed theirs),
-- and only if any key is held at all: a queue that uses no keys pays no lookup per job.
local function trim(set, keep, max_age, holds_keys)
  local count = math.max(redis.call('ZCARD', set) - keep,
                         redis.call('ZCOUNT', set, '-inf', '(' .. (now - max_age)))
  count = math.min(count, TRIM_MAX)
  if count <= 0 then return end
  local ids = redis.call('ZRANGE', set, 0, count - 1)
  holds_keys = holds_keys and redis.call('HLEN', idem) > 0
  local keys = {}
  for i, id in ipairs(ids) do
    keys[i] = jobs .. id
    if holds_keys then
      local key = redis.call('HGET', keys[i], 'idem')
      if key and redis.call('HGET', idem, key) == id then redis.call('HDEL', idem, key) end
    end
  end
  for i = 1, count, 4000 do
    redis.call('DEL', unpack(keys, i, math.min(i + 3999, count)))
  end
  redis.call('ZREMRANGEBYRANK', set, 0, count - 1)
end
trim(completed, tonumber(ARGV[1]), tonumber(ARGV[2]), true)
trim(dead, tonumber(ARGV[3]), tonumber(ARGV[4]), false)
trim(cancelled, tonumber(ARGV[3]), tonumber(ARGV[4]), false)
return accepted
