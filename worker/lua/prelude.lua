-- prelude.lua: the functions several queue scripts share, each written once.
--
-- cmake/embed_lua.cmake prepends this file, at build time, to every script of worker/lua/
-- whose first line is "-- Uses prelude.lua". Why: a Redis script cannot call another
-- script, so shared steps (the reaper's work inside every claim and in reap.lua, the
-- waiting set's encoding, idempotency keys) would otherwise be copied. Line numbers in a
-- script's error messages count from the top of this prelude.
--
-- Most functions take q, a table the script builds once per call:
--   q.now      Redis's clock (ms), from TIME
--   q.jobs     prefix .. 'job:'    the job hashes, job:<id>
--   q.claims   prefix .. 'claim:'  the claims, claim:<id>
--   q.waiting, q.delayed, q.active, q.dead, q.cancelled, q.idem, q.idem_expiry: keys
--              from the script's KEYS (only those the functions it calls use)
-- job:<id> and claim:<id> are derived from KEYS[1], the queue's prefix "lk:{Q}:", because
-- which jobs a call touches is decided inside the script (a ZRANGE, a token). Redis
-- Cluster runs a script on the node of its KEYS and needs every key it touches in the
-- same slot; these carry the same hash tag {Q} as KEYS[1], so they are in that slot.

local call, fmt, sub, find = redis.call, string.format, string.sub, string.find

-- unpack is bounded by Lua's C stack (8000 slots): pass at most 4000 arguments at a time.
local function bulk(command, key, args, n)
  for i = 1, n, 4000 do
    call(command, key, unpack(args, i, math.min(i + 3999, n)))
  end
end
local function bulk_keys(command, args, n)
  for i = 1, n, 4000 do
    call(command, unpack(args, i, math.min(i + 3999, n)))
  end
end
local function mget(keys)
  local values, n = {}, #keys
  for i = 1, n, 4000 do
    local part = call('MGET', unpack(keys, i, math.min(i + 3999, n)))
    for j = 1, #part do values[i + j - 1] = part[j] end
  end
  return values
end

local function now_ms()
  local t = call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end

-- The waiting set: score = priority, member = a letter for the id's digit count (A = 1
-- digit ... P = 16) followed by the id: "C123" for job 123.
-- Why: claims take the lowest score first and, among equal scores, Redis orders members
-- by their bytes; a shorter id is a smaller number, so the letter makes byte order numeric
-- order: FIFO within a priority, for every id up to 2^53 - 1 (MAX_JOB_ID, the largest
-- integer a Lua number holds exactly). The score is a small integer, exact in any double,
-- and a job put back later (reaped, released, retried) keeps its original place. A letter
-- rather than zero-padding to 16 digits: taking it off is one string.sub per claimed job,
-- where finding the first non-zero digit cost a tenth of a claim's work.
local MAX_JOB_ID = 9007199254740991
local function waiting_member(id)
  return string.char(64 + #id) .. id
end
local function waiting_id(member)
  return sub(member, 2)
end

-- A claim whose job was cancelled while it ran: its value is the token with this suffix.
-- The claim stays until the worker reports that the handler stopped, or its lease runs
-- out, so that the job counts as active and holds its idempotency key until then.
local CANCELLED = ' cancelled'

-- Idempotency keys: idem (key -> id) and idem_expiry (key -> when it may be released, ms).
-- The id of the job that holds key, or nil when key is free. A key is held while its job
-- is unfinished (waiting, delayed, claimed, or cancelled and still stopping) and, after it
-- completed, until its expiry, even once the job itself is trimmed. Dead and cancelled
-- jobs release their key at once (a resubmit is how a caller asks for a fresh attempt).
local function key_holder(q, key)
  local id = call('HGET', q.idem, key)
  if not id then return nil end
  local state = call('HGET', q.jobs .. id, 'state')
  if state == 'waiting' or state == 'delayed' then return id end
  if call('EXISTS', q.claims .. id) == 1 then return id end
  if state == 'dead' or state == 'cancelled' then return nil end
  if (tonumber(call('ZSCORE', q.idem_expiry, key)) or 0) > q.now then return id end
  return nil
end
local function take_key(q, key, id, window)
  call('HSET', q.idem, key, id)
  call('ZADD', q.idem_expiry, fmt('%d', q.now + window), key)
end
local function release_key(q, key, id)
  if key and call('HGET', q.idem, key) == id then
    call('HDEL', q.idem, key)
    call('ZREM', q.idem_expiry, key)
  end
end
-- How long a job's key is held when the job names no window (keys taken before windows
-- existed, at upgrade): the default, 24 h.
local DEFAULT_KEY_WINDOW = 86400000

-- Each attempt's error, newest last, in the job hash as a JSON array of {attempt, at_ms,
-- error}: the last MAX_ATTEMPT_ERRORS attempts, each error cut to its first 1 KB.
local MAX_ATTEMPT_ERRORS = 10
local function with_attempt_error(json, attempt, now, error)
  local list = {}
  if json then list = cjson.decode(json) end
  if #error > 1024 then error = sub(error, 1, 1021) .. '...' end
  list[#list + 1] = {attempt = tonumber(attempt), at_ms = now, error = error}
  while #list > MAX_ATTEMPT_ERRORS do table.remove(list, 1) end
  return cjson.encode(list)
end

-- The claim of a cancelled job ends (its worker reported, or its lease ran out): only now
-- has the job finished, so only now does it enter the cancelled set and free its key.
-- The caller deletes claim:<id> and removes the id from active.
local function end_cancelled_claim(q, id)
  local job = q.jobs .. id
  call('HSET', job, 'finished_ms', fmt('%d', q.now))
  call('ZADD', q.cancelled, fmt('%d', q.now), id)
  release_key(q, call('HGET', job, 'idem'), id)
end

-- Delayed jobs that are due go back to waiting at their place (bounded by limit).
local function promote_due(q, limit)
  local ids = call('ZRANGEBYSCORE', q.delayed, '-inf', q.now, 'LIMIT', 0, limit)
  local scored = {}
  for i, id in ipairs(ids) do
    local job = q.jobs .. id
    call('HSET', job, 'state', 'waiting')
    scored[i * 2 - 1] = call('HGET', job, 'priority') or '0'
    scored[i * 2] = waiting_member(id)
  end
  bulk('ZREM', q.delayed, ids, #ids)
  bulk('ZADD', q.waiting, scored, #scored)
  return #ids
end

-- A lease expired: its worker neither finished nor renewed in time (crashed, hung, cut off
-- from Redis). That attempt is spent: the job counts a stall and goes back to its place in
-- waiting, or is dead when it has no attempts left or has stalled max_stalls times (a job
-- that reliably kills or hangs its worker must not take down worker after worker). The
-- stall goes into the attempt errors; the job's error (its last real one) is kept unless
-- the stall kills it. A cancelled job's claim just ends. Either way the claim's attempt and
-- start time go into the job hash and its key is deleted. Returns how many went back to
-- waiting, and how many ended otherwise (dead, or cancelled and ended).
local function reap_expired(q, limit, max_stalls)
  local ids = call('ZRANGEBYSCORE', q.active, '-inf', '(' .. q.now, 'LIMIT', 0, limit)
  if #ids == 0 then return 0, 0 end
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = q.claims .. id end
  local tokens = mget(keys)
  local back, buried, nback, nburied, ended = {}, {}, 0, 0, 0
  for i, id in ipairs(ids) do
    local job = q.jobs .. id
    local token = tokens[i] or ''
    local attempt, started = string.match(token, '^(%d+):(%d+):')
    local fields
    if sub(token, -#CANCELLED) == CANCELLED then
      end_cancelled_claim(q, id)
      ended = ended + 1
      fields = {}
    else
      local f = call('HMGET', job, 'stalls', 'priority', 'idem', 'max_attempts', 'attempts',
                     'attempt_errors')
      local stalls = (tonumber(f[1]) or 0) + 1
      attempt = attempt or f[5] or '0'
      local limit_attempts = tonumber(f[4]) or 1
      fields = {'stalls', stalls, 'attempt_errors',
                with_attempt_error(f[6], attempt, q.now,
                                   'lease expired without renewal (stall ' .. stalls .. ')')}
      local reason
      if tonumber(attempt) >= limit_attempts then
        reason = 'lease expired on its last attempt (' .. attempt .. ' of ' .. limit_attempts ..
                 '): the worker crashed, hung or lost Redis'
      elseif stalls >= max_stalls then
        reason = 'stalled ' .. stalls .. ' times: lease expired without renewal (worker ' ..
                 'crashed or hung)'
      end
      if reason then
        fields[#fields + 1], fields[#fields + 2] = 'state', 'dead'
        fields[#fields + 1], fields[#fields + 2] = 'finished_ms', fmt('%d', q.now)
        fields[#fields + 1], fields[#fields + 2] = 'error', reason
        release_key(q, f[3], id)
        buried[nburied + 1], buried[nburied + 2] = fmt('%d', q.now), id
        nburied = nburied + 2
      else
        fields[#fields + 1], fields[#fields + 2] = 'state', 'waiting'
        back[nback + 1], back[nback + 2] = f[2] or '0', waiting_member(id)
        nback = nback + 2
      end
    end
    if started then
      fields[#fields + 1], fields[#fields + 2] = 'attempts', attempt
      fields[#fields + 1], fields[#fields + 2] = 'started_ms', started
    end
    if #fields > 0 then call('HSET', job, unpack(fields)) end
  end
  bulk_keys('DEL', keys, #keys)
  bulk('ZREM', q.active, ids, #ids)
  bulk('ZADD', q.waiting, back, nback)
  bulk('ZADD', q.dead, buried, nburied)
  return nback / 2, nburied / 2 + ended
end
