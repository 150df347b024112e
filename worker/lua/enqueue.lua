-- Uses prelude.lua
-- Store a batch of new jobs, waiting or delayed, in one call.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id: see prelude.lua)
-- KEYS[2] seq   KEYS[3] waiting   KEYS[4] delayed   KEYS[5] idem   KEYS[6] idem_expiry
-- KEYS[7] wake
-- ARGV[1] n, ARGV[2] the key window (ms) of jobs that set none, ARGV[3] e; then e triples
--         for the jobs with settings of their own: index, key window ms, max backoff ms
--         (0 = not set); then 8 per job: name, payload, priority, max_attempts, lease_ms,
--         timeout_ms, delay_ms, idempotency key ('' = none)
-- Returns {first, then 2 per job that already existed: index, id}. The jobs created get the
-- ids first, first + 1, ... in input order (first is 0 when none was); a job listed by
-- index was not created because another job holds its idempotency key: that job's id.
-- Error "LK ..." when the ids would pass MAX_JOB_ID; then nothing is written.
--
--   for each job with a key: key_holder(key) names a job -> answer that job (a resubmit
--     after a lost reply must not run the work twice; see prelude.lua for when it holds)
--   last = INCRBY seq <new jobs>                 -- one call, ids in submission order
--   HSET job:<id> ...; ZADD waiting | delayed    -- one ZADD per set for the whole batch
--   HSET idem key id; ZADD idem_expiry now + window key     -- per job with a key
--   release up to n + 100 keys whose expiry passed (a job still unfinished keeps its key
--     for another window)
--   LPUSH wake 1; LTRIM wake 0 0                 -- wake a worker blocked in BRPOP
--
-- Why the sparse triples: rarely set, they would cost every job of a batch two arguments
-- (each argument costs Redis about as much as a field of the job hash). Why keys expire
-- here: submitting is what adds keys, so each call releases about as many
-- as it adds and no timer is needed; idem_expiry is ordered by expiry, so the call reads
-- only keys that are due, never the whole hash.
local prefix, seq, waiting, delayed, idem, idem_expiry, wake = unpack(KEYS)
local argv = ARGV
local n, queue_window, e = tonumber(argv[1]), tonumber(argv[2]), tonumber(argv[3])
local o = 3 + e * 3  -- job i's arguments are argv[o + (i - 1) * 8 + 1 .. 8]
local own_window, own_backoff = {}, {}
for k = 0, e - 1 do
  local i = tonumber(argv[4 + k * 3])
  own_window[i], own_backoff[i] = tonumber(argv[5 + k * 3]), argv[6 + k * 3]
end
local now = now_ms()
local q = {now = now, jobs = prefix .. 'job:', claims = prefix .. 'claim:', idem = idem,
           idem_expiry = idem_expiry}
-- Numbers passed to redis.call are formatted with %.17g, which costs as much as the call
-- itself; integers are turned into text once, with %d.
local now_text = fmt('%d', now)
local jobs = q.jobs

-- Resolve idempotency keys first, so that resubmits consume no id. held[i] is the id of
-- an existing job, or the negated index of an earlier job of this batch with the same key.
local held, first_in_batch, fresh = {}, {}, 0
for i = 1, n do
  local key = argv[o + (i - 1) * 8 + 8]
  if key ~= '' then
    if first_in_batch[key] then
      held[i] = -first_in_batch[key]
    else
      held[i] = key_holder(q, key)
      if not held[i] then first_in_batch[key] = i end
    end
  end
  if not held[i] then fresh = fresh + 1 end
end

local id = 0
if fresh > 0 then
  -- Checked before anything is written: a script's writes are not undone by its error.
  if (tonumber(call('GET', seq)) or 0) + fresh > MAX_JOB_ID then
    return redis.error_reply('LK queue ids are exhausted: ids go up to ' ..
                             fmt('%d', MAX_JOB_ID) .. ' (2^53 - 1); start a new queue')
  end
  id = call('INCRBY', seq, fresh) - fresh
end
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
    local b = o + (i - 1) * 8 - 1
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
      ready[nready + 1], ready[nready + 2] = priority, waiting_member(id_text)
      nready = nready + 2
    end
    -- Rarely used settings cost nothing when unset: no field, no command.
    if key ~= '' then
      local window = own_window[i] or 0
      if window <= 0 then window = queue_window end
      call('HSET', job, 'idem', key, 'idem_window_ms', fmt('%d', window))
      take_key(q, key, id_text, window)
    end
    if own_backoff[i] and own_backoff[i] ~= '0' then
      call('HSET', job, 'max_backoff_ms', own_backoff[i])
    end
  end
end

bulk('ZADD', waiting, ready, nready)
bulk('ZADD', delayed, later, nlater)

-- Release keys whose window has passed, a bounded number per call.
local due = call('ZRANGEBYSCORE', idem_expiry, '-inf', now, 'LIMIT', 0, n + 100)
for _, key in ipairs(due) do
  local holder = call('HGET', idem, key)
  local f = holder and call('HMGET', jobs .. holder, 'state', 'idem_window_ms') or {}
  if f[1] == 'waiting' or f[1] == 'delayed' or call('EXISTS', q.claims .. (holder or '')) == 1 then
    take_key(q, key, holder, tonumber(f[2]) or DEFAULT_KEY_WINDOW)
  else
    call('HDEL', idem, key)
    call('ZREM', idem_expiry, key)
  end
end

if fresh > 0 then
  call('LPUSH', wake, 1)
  call('LTRIM', wake, 0, 0)
end
return out
