-- Uses prelude.lua
-- Record how claimed jobs ended, then trim finished jobs past their retention.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id, claims prefix .. 'claim:'
--         .. id: see prelude.lua)
-- KEYS[2] active  KEYS[3] delayed  KEYS[4] completed  KEYS[5] dead  KEYS[6] cancelled
-- KEYS[7] idem    KEYS[8] idem_expiry
-- ARGV[1..5] keep_completed, completed_max_age_ms, keep_dead, dead_max_age_ms,
--            max_backoff_ms (the queue's; a job's own max_backoff_ms wins)
-- ARGV[6] s, ARGV[7] f; then s successes, 3 each: id, token, result; then f failures,
--         6 each: id, token, error, retryable (1|0), max_attempts override (0 = the job's
--         own), backoff jitter factor
-- Returns {accepted1, accepted2, ...} in that order (successes, then failures): 1 recorded,
-- 0 the claim was no longer valid.
--
--   MGET claim:<id> for the batch; token ~= it -> refused (reclaimed after a stall,
--                                                 released, cancelled, finished already);
--                                                 a cancelled claim of this token ends
--   success                                -> completed, result kept
--   failure, attempts < limit, retryable   -> delayed until now + min(2^(attempts-1) s *
--                                             jitter, max backoff)
--   failure otherwise                      -> dead, error kept, idempotency key freed
--   each with the claim's attempt and start time; a failure also appends to the job's
--   attempt errors; then DEL the claims, ZREM active
--   then delete the oldest completed (and dead, and cancelled) jobs beyond the retention
--   count or age, at most TRIM_MAX per set per call
--
-- Why the token check: a job whose lease expired may be running again elsewhere; only the
-- current claim may record an outcome, so no job is completed twice. The claim is one
-- string key per job, so the whole batch is checked with one MGET, and the hot path (a
-- success) costs one command per job: the HSET that records it. Successes come first and
-- with three arguments each, for the same reason. Why a refused outcome can still end a
-- cancelled claim: it is the worker saying the handler has stopped, which is when the
-- cancelled job has really finished (prelude.lua). Why the backoff is capped: 2^(n-1) s
-- grows past any useful wait (attempt 60 would be due in 10^13 years). Why trimming here:
-- finishing is what makes the finished sets grow, so each call cleans up about as much as
-- it adds, and no timer is needed. The work is bounded to keep every call short.
-- Idempotency keys are not touched by trimming: they live for their own window
-- (enqueue.lua), however long their jobs are kept.
local prefix, active, delayed, completed, dead, cancelled, idem, idem_expiry = unpack(KEYS)
local argv = ARGV
local queue_max_backoff = tonumber(argv[5])
local s, f = tonumber(argv[6]), tonumber(argv[7])
local n = s + f
local now = now_ms()
-- Numbers passed to redis.call are formatted with %.17g, which costs as much as the call
-- itself; now is turned into text once.
local now_text = fmt('%d', now)
local jobs = prefix .. 'job:'
local claims = prefix .. 'claim:'
local q = {now = now, jobs = jobs, claims = claims, cancelled = cancelled, idem = idem,
           idem_expiry = idem_expiry}
local TRIM_MAX = 1000

-- Where job i's arguments start: argv[b + 1] is its id, argv[b + 2] its token.
local function base(i)
  if i <= s then return 7 + (i - 1) * 3 end
  return 7 + s * 3 + (i - s - 1) * 6
end

local keys = {}
for i = 1, s do keys[i] = claims .. argv[5 + i * 3] end
for i = s + 1, n do keys[i] = claims .. argv[base(i) + 1] end
local current = mget(keys)

-- The token is "<attempt>:<started_ms>:<claimseq>.<id>" (claim_batch.lua).
local function attempt_and_start(token)
  local p = find(token, ':', 2, true)
  local r = find(token, ':', p + 2, true)
  return sub(token, 1, p - 1), sub(token, p + 1, r - 1)
end

-- One pass over all outcomes, successes first. Outcome i is recorded only if its claim is
-- the current one (claim == token), and once per batch (spent: the same claim twice counts
-- once); an accepted claim joins ended, whose keys are deleted together at the end. A
-- refused outcome whose claim is its token, cancelled, ends that claim.
local accepted, ended, spent = {}, {}, {}
local done, buried, later = {}, {}, {}
local nended, ndone, nburied, nlater = 0, 0, 0, 0
for i = 1, n do
  local b = i <= s and 4 + i * 3 or base(i)  -- base(i), inline for successes: the hot path
  local id, token = argv[b + 1], argv[b + 2]
  local claim = current[i]
  if claim ~= token or spent[id] then
    accepted[i] = 0
    if claim and not spent[id] and claim == token .. CANCELLED then
      spent[id] = true
      end_cancelled_claim(q, id)
      nended = nended + 1
      ended[nended] = id
      keys[nended] = keys[i]
    end
  else
    accepted[i] = 1
    spent[id] = true
    nended = nended + 1
    ended[nended] = id
    keys[nended] = keys[i]
    local attempts, started = attempt_and_start(token)
    if i <= s then
      local result = argv[b + 3]
      -- An empty result is not stored: reading a missing field gives the same empty text.
      if result == '' then
        call('HSET', jobs .. id, 'state', 'completed', 'finished_ms', now_text,
             'attempts', attempts, 'started_ms', started)
      else
        call('HSET', jobs .. id, 'state', 'completed', 'finished_ms', now_text,
             'result', result, 'attempts', attempts, 'started_ms', started)
      end
      done[ndone + 1], done[ndone + 2] = now_text, id
      ndone = ndone + 2
    else
      local job = jobs .. id
      local fields = call('HMGET', job, 'max_attempts', 'idem', 'max_backoff_ms',
                          'attempt_errors')
      local limit = tonumber(argv[b + 5])
      if limit <= 0 then limit = tonumber(fields[1]) or 1 end
      local error = argv[b + 3]
      local errors = with_attempt_error(fields[4], attempts, now, error)
      if argv[b + 4] == '0' or tonumber(attempts) >= limit then
        call('HSET', job, 'state', 'dead', 'finished_ms', now_text, 'error', error,
             'attempts', attempts, 'started_ms', started, 'attempt_errors', errors)
        -- Dead frees the key: resubmitting is how a caller asks for a fresh attempt.
        release_key(q, fields[2], id)
        buried[nburied + 1], buried[nburied + 2] = now_text, id
        nburied = nburied + 2
      else
        -- 2^40 s is past any cap; the exponent is bounded so the product stays exact.
        local cap = tonumber(fields[3]) or queue_max_backoff
        local wait = 2 ^ math.min(tonumber(attempts) - 1, 40) * 1000 * tonumber(argv[b + 6])
        local run_at = fmt('%d', now + math.floor(math.min(wait, cap)))
        call('HSET', job, 'state', 'delayed', 'run_at_ms', run_at, 'error', error,
             'attempts', attempts, 'started_ms', started, 'attempt_errors', errors)
        later[nlater + 1], later[nlater + 2] = run_at, id
        nlater = nlater + 2
      end
    end
  end
end
-- keys[1..nended] are the claims that ended (compacted above).
bulk_keys('DEL', keys, nended)
bulk('ZREM', active, ended, nended)
bulk('ZADD', completed, done, ndone)
bulk('ZADD', dead, buried, nburied)
bulk('ZADD', delayed, later, nlater)

-- Both bounds select a prefix of the set (oldest first): trim the longer one.
local function trim(set, keep, max_age)
  local count = math.max(call('ZCARD', set) - keep,
                         call('ZCOUNT', set, '-inf', '(' .. (now - max_age)))
  count = math.min(count, TRIM_MAX)
  if count <= 0 then return end
  local ids = call('ZRANGE', set, 0, count - 1)
  for i = 1, #ids do ids[i] = jobs .. ids[i] end
  bulk_keys('DEL', ids, #ids)
  call('ZREMRANGEBYRANK', set, 0, count - 1)
end
trim(completed, tonumber(argv[1]), tonumber(argv[2]))
trim(dead, tonumber(argv[3]), tonumber(argv[4]))
trim(cancelled, tonumber(argv[3]), tonumber(argv[4]))
return accepted
