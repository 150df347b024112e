-- Store a batch of new jobs, waiting or delayed, in one call.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id)
-- KEYS[2] seq   KEYS[3] waiting   KEYS[4] delayed   KEYS[5] idem   KEYS[6] wake
-- ARGV[1] n, then 8 per job: name, payload, priority, max_attempts, lease_ms, timeout_ms,
--         delay_ms, idempotency key ('' = none)
-- Returns {first, then 2 per job that already existed: index, id}. The jobs created get the
-- ids first, first + 1, ... in input order (first is 0 when none was); a job listed by
-- index was not created because another job holds its idempotency key: that job's id.
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
local call, argv = redis.call, ARGV
local n = tonumber(argv[1])
local t = call('TIME')
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
  local key = argv[i * 8 + 1]
  if key ~= '' then
    if first_in_batch[key] then
      held[i] = -first_in_batch[key]
    else
      local id = call('HGET', idem, key)
      if id then
        local state = call('HGET', jobs .. id, 'state')
        if state and state ~= 'dead' and state ~= 'cancelled' then held[i] = id end
      end
      if not held[i] then first_in_batch[key] = i end
    end
  end
  if not held[i] then fresh = fresh + 1 end
end

local id = 0
if fresh > 0 then id = call('INCRBY', seq, fresh) - fresh end
local out, ready, later, nready, nlater, nout = {id + 1}, {}, {}, 0, 0, 1
if fresh == 0 then out[1] = 0 end
local created = {}
for i = 1, n do
  local h = held[i]
  if h then
    if type(h) == 'number' then h = created[-h] end
    out[nout + 1], out[nout + 2] = i, h
    nout = nout + 2
  else
    id = id + 1
    created[i] = id
    local b = (i - 1) * 8
    local id_text = fmt('%d', id)
    local job = jobs .. id_text
    local priority, delay, key = argv[b + 4], argv[b + 8], argv[b + 9]
    if delay ~= '0' then
      local run_at = fmt('%d', now + delay)
      call('HSET', job, 'name', argv[b + 2], 'payload', argv[b + 3], 'priority', priority,
           'max_attempts', argv[b + 5], 'lease_ms', argv[b + 6], 'timeout_ms', argv[b + 7],
           'created_ms', now_text, 'state', 'delayed', 'run_at_ms', run_at)
      later[nlater + 1], later[nlater + 2] = run_at, id_text
      nlater = nlater + 2
    else
      call('HSET', job, 'name', argv[b + 2], 'payload', argv[b + 3], 'priority', priority,
           'max_attempts', argv[b + 5], 'lease_ms', argv[b + 6], 'timeout_ms', argv[b + 7],
           'created_ms', now_text, 'state', 'waiting')
      ready[nready + 1], ready[nready + 2] = fmt('%d', (priority + 1000) * BAND + id), id_text
      nready = nready + 2
    end
    if key ~= '' then
      call('HSET', job, 'idem', key)
      call('HSET', idem, key, id_text)
    end
  end
end

-- unpack is bounded by Lua's C stack (8000 slots): add at most 4000 arguments at a time.
for i = 1, nready, 4000 do
  call('ZADD', waiting, unpack(ready, i, math.min(i + 3999, nready)))
end
for i = 1, nlater, 4000 do
  call('ZADD', delayed, unpack(later, i, math.min(i + 3999, nlater)))
end
if fresh > 0 then
  call('LPUSH', wake, 1)
  call('LTRIM', wake, 0, 0)
end
return out
