-- Store a batch of new jobs, waiting or delayed, in one call.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id)
-- KEYS[2] seq   KEYS[3] waiting   KEYS[4] delayed   KEYS[5] idem   KEYS[6] wake
-- ARGV[1] n, then 8 per job: name, payload, priority, max_attempts, lease_ms, timeout_ms,
--         delay_ms, idempotency key ('' = none)
-- Returns {id1, created1, id2, created2, ...} in input order; created 0 means a job that
-- already holds the idempotency key was returned instead.
--
--   for each job with a key: idem[key] names a waiting, delayed, active or completed job
--     -> answer that job (a resubmit after a lost reply must not run the work twice)
--   last = INCRBY seq <new jobs>                 -- one call, ids in submission order
--   HSET job:<id> ...; ZADD waiting | delayed    -- one ZADD per set for the whole batch
--   LPUSH wake 1; LTRIM wake 0 0                 -- wake a worker blocked in BRPOP
--
-- Why the waiting score (priority + 1000) * 2^42 + id: one ZPOPMIN must give the lowest
-- priority first and the oldest job within a priority. The priority picks a band of 2^42
-- ids and the id orders the band; 2000 * 2^42 < 2^53, so every score is an exact double
-- and a job put back later (reaped, released, retried) keeps its original place.
local prefix, seq, waiting, delayed, idem, wake = unpack(KEYS)
local n = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local BAND = 4398046511104
-- Numbers passed to redis.call are formatted with %.17g, which costs as much as the call
-- itself; integers are turned into text once, with %d.
local fmt = string.format
local now_text = fmt('%d', now)
local jobs = prefix .. 'job:'

-- Resolve idempotency keys first, so that resubmits consume no id. held[i] is the id of
-- an existing job, or the negated index of an earlier job of this batch with the same key.
local held, first_in_batch, fresh = {}, {}, 0
for i = 1, n do
  local key = ARGV[i * 8 + 1]
  if key ~= '' then
    if first_in_batch[key] then
      held[i] = -first_in_batch[key]
    else
      local id = redis.call('HGET', idem, key)
      if id then
        local state = redis.call('HGET', jobs .. id, 'state')
        if state and state ~= 'dead' and state ~= 'cancelled' then held[i] = id end
      end
      if not held[i] then first_in_batch[key] = i end
    end
  end
  if not held[i] then fresh = fresh + 1 end
end

local id = 0
if fresh > 0 then id = redis.call('INCRBY', seq, fresh) - fresh end
local out, ready, later, nready, nlater = {}, {}, {}, 0, 0
for i = 1, n do
  local h = held[i]
  if h then
    if type(h) == 'number' then h = out[-h * 2 - 1] end
    out[i * 2 - 1], out[i * 2] = h, 0
  else
    id = id + 1
    local b = (i - 1) * 8
    local id_text = fmt('%d', id)
    local job = jobs .. id_text
    local priority, delay, key = ARGV[b + 4], tonumber(ARGV[b + 8]), ARGV[b + 9]
    if delay > 0 then
      local run_at = fmt('%d', now + delay)
      redis.call('HSET', job, 'name', ARGV[b + 2], 'payload', ARGV[b + 3], 'priority', priority,
                 'max_attempts', ARGV[b + 5], 'lease_ms', ARGV[b + 6], 'timeout_ms', ARGV[b + 7],
                 'created_ms', now_text, 'state', 'delayed', 'run_at_ms', run_at)
      later[nlater + 1], later[nlater + 2] = run_at, id_text
      nlater = nlater + 2
    else
      redis.call('HSET', job, 'name', ARGV[b + 2], 'payload', ARGV[b + 3], 'priority', priority,
                 'max_attempts', ARGV[b + 5], 'lease_ms', ARGV[b + 6], 'timeout_ms', ARGV[b + 7],
                 'created_ms', now_text, 'state', 'waiting')
      ready[nready + 1], ready[nready + 2] = fmt('%d', (priority + 1000) * BAND + id), id_text
      nready = nready + 2
    end
    if key ~= '' then
      redis.call('HSET', job, 'idem', key)
      redis.call('HSET', idem, key, id_text)
    end
    out[i * 2 - 1], out[i * 2] = id, 1
  end
end

-- unpack is bounded by Lua's C stack (8000 slots): add at most 4000 arguments at a time.
for i = 1, nready, 4000 do
  redis.call('ZADD', waiting, unpack(ready, i, math.min(i + 3999, nready)))
end
for i = 1, nlater, 4000 do
  redis.call('ZADD', delayed, unpack(later, i, math.min(i + 3999, nlater)))
end
if fresh > 0 then
  redis.call('LPUSH', wake, 1)
  redis.call('LTRIM', wake, 0, 0)
end
return out
