-- Record how claimed jobs ended, then trim finished jobs past their retention.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id, claims prefix .. 'claim:' .. id)
-- KEYS[2] active  KEYS[3] delayed  KEYS[4] completed  KEYS[5] dead  KEYS[6] cancelled
-- KEYS[7] idem
-- ARGV[1..4] keep_completed, completed_max_age_ms, keep_dead, dead_max_age_ms
-- ARGV[5] s, ARGV[6] f; then s successes, 3 each: id, token, result; then f failures,
--         6 each: id, token, error, retryable (1|0), max_attempts override (0 = the job's
--         own), backoff jitter factor
-- Returns {accepted1, accepted2, ...} in that order (successes, then failures): 1 recorded,
-- 0 the claim was no longer valid.
--
--   MGET claim:<id> for the batch; token ~= it -> refused (reclaimed after a stall,
--                                                 released, cancelled, finished already)
--   success                                -> completed, result kept
--   failure, attempts < limit, retryable   -> delayed until now + 2^(attempts-1) s * jitter
--   failure otherwise                      -> dead, error kept, idempotency key freed
--   each with the claim's attempt and start time; then DEL the claims, ZREM active
--   then delete the oldest completed (and dead, and cancelled) jobs beyond the retention
--   count or age, at most TRIM_MAX per set per call
--
-- Why the token check: a job whose lease expired may be running again elsewhere; only the
-- current claim may record an outcome, so no job is completed twice. The claim is one
-- string key per job, so the whole batch is checked with one MGET, and the hot path (a
-- success) costs one command per job: the HSET that records it. Successes come first and
-- with three arguments each, for the same reason. Why trimming here: finishing is what
-- makes the finished sets grow, so each call cleans up about as much as it adds, and no
-- timer is needed. The work is bounded to keep every call short.
local prefix, active, delayed, completed, dead, cancelled, idem = unpack(KEYS)
local call, find, sub = redis.call, string.find, string.sub
local argv = ARGV
local s, f = tonumber(argv[5]), tonumber(argv[6])
local n = s + f
local t = call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
-- Numbers passed to redis.call are formatted with %.17g, which costs as much as the call
-- itself; now is turned into text once.
local now_text = string.format('%d', now)
local jobs = prefix .. 'job:'
local claims = prefix .. 'claim:'
local TRIM_MAX = 1000

-- unpack is bounded by Lua's C stack (8000 slots): pass at most 4000 arguments at a time.
local function bulk(command, key, args, count)
  for i = 1, count, 4000 do
    call(command, key, unpack(args, i, math.min(i + 3999, count)))
  end
end

-- Where job i's arguments start: argv[b + 1] is its id, argv[b + 2] its token.
local function base(i)
  if i <= s then return 6 + (i - 1) * 3 end
  return 6 + s * 3 + (i - s - 1) * 6
end

local keys = {}
for i = 1, s do keys[i] = claims .. argv[4 + i * 3] end
for i = s + 1, n do keys[i] = claims .. argv[base(i) + 1] end
local current = {}
for i = 1, n, 4000 do
  local part = call('MGET', unpack(keys, i, math.min(i + 3999, n)))
  for j = 1, #part do current[i + j - 1] = part[j] end
end

-- The token is "<attempt>:<started_ms>:<claimseq>.<id>" (claim_batch.lua).
local function attempt_and_start(token)
  local p = find(token, ':', 2, true)
  local q = find(token, ':', p + 2, true)
  return sub(token, 1, p - 1), sub(token, p + 1, q - 1)
end

local accepted, ended, spent, done, buried, later = {}, {}, {}, {}, {}, {}
local nended, ndone, nburied, nlater = 0, 0, 0, 0
for i = 1, s do
  local b = 3 + i * 3
  local id, token = argv[b + 1], argv[b + 2]
  -- spent: the same claim twice in one batch counts once.
  if current[i] ~= token or spent[id] then
    accepted[i] = 0
  else
    accepted[i] = 1
    spent[id] = true
    nended = nended + 1
    ended[nended] = id
    keys[nended] = keys[i]
    local attempts, started = attempt_and_start(token)
    local result = argv[b + 3]
    -- An empty result is not stored: reading a missing field gives the same empty text.
    if result == '' then
      call('HSET', jobs .. id, 'state', 'completed', 'finished_ms', now_text,
           'attempts', attempts, 'started_ms', started)
    else
      call('HSET', jobs .. id, 'state', 'completed', 'finished_ms', now_text, 'result', result,
           'attempts', attempts, 'started_ms', started)
    end
    done[ndone + 1], done[ndone + 2] = now_text, id
    ndone = ndone + 2
  end
end
for i = s + 1, n do
  local b = base(i)
  local id, token = argv[b + 1], argv[b + 2]
  if current[i] ~= token or spent[id] then
    accepted[i] = 0
  else
    accepted[i] = 1
    spent[id] = true
    nended = nended + 1
    ended[nended] = id
    keys[nended] = keys[i]
    local job = jobs .. id
    local attempts, started = attempt_and_start(token)
    attempts = tonumber(attempts)
    local fields = call('HMGET', job, 'max_attempts', 'idem')
    local limit = tonumber(argv[b + 5])
    if limit <= 0 then limit = tonumber(fields[1]) or 1 end
    if argv[b + 4] == '0' or attempts >= limit then
      call('HSET', job, 'state', 'dead', 'finished_ms', now_text, 'error', argv[b + 3],
           'attempts', attempts, 'started_ms', started)
      -- Dead frees the key: resubmitting is how a caller asks for a fresh attempt.
      local key = fields[2]
      if key and call('HGET', idem, key) == id then call('HDEL', idem, key) end
      buried[nburied + 1], buried[nburied + 2] = now_text, id
      nburied = nburied + 2
    else
      local run_at = now + math.floor(2 ^ (attempts - 1) * 1000 * tonumber(argv[b + 6]))
      call('HSET', job, 'state', 'delayed', 'run_at_ms', run_at, 'error', argv[b + 3],
           'attempts', attempts, 'started_ms', started)
      later[nlater + 1], later[nlater + 2] = run_at, id
      nlater = nlater + 2
    end
  end
end
-- keys[1..nended] are the claims that ended (compacted in the loops above).
for i = 1, nended, 4000 do
  call('DEL', unpack(keys, i, math.min(i + 3999, nended)))
end
bulk('ZREM', active, ended, nended)
bulk('ZADD', completed, done, ndone)
bulk('ZADD', dead, buried, nburied)
bulk('ZADD', delayed, later, nlater)

-- Both bounds select a prefix of the set (oldest first): trim the longer one. Only
-- completed jobs can still hold an idempotency key (dead and cancelled ones freed theirs),
-- and only if any key is held at all: a queue that uses no keys pays no lookup per job.
local function trim(set, keep, max_age, holds_keys)
  local count = math.max(call('ZCARD', set) - keep,
                         call('ZCOUNT', set, '-inf', '(' .. (now - max_age)))
  count = math.min(count, TRIM_MAX)
  if count <= 0 then return end
  local ids = call('ZRANGE', set, 0, count - 1)
  holds_keys = holds_keys and call('HLEN', idem) > 0
  local keys = {}
  for i = 1, #ids do
    local id = ids[i]
    keys[i] = jobs .. id
    if holds_keys then
      local key = call('HGET', keys[i], 'idem')
      if key and call('HGET', idem, key) == id then call('HDEL', idem, key) end
    end
  end
  for i = 1, count, 4000 do
    call('DEL', unpack(keys, i, math.min(i + 3999, count)))
  end
  call('ZREMRANGEBYRANK', set, 0, count - 1)
end
trim(completed, tonumber(ARGV[1]), tonumber(ARGV[2]), true)
trim(dead, tonumber(ARGV[3]), tonumber(ARGV[4]), false)
trim(cancelled, tonumber(ARGV[3]), tonumber(ARGV[4]), false)
return accepted
