-- Claim up to max jobs for one worker, fenced by the owner's epoch.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id, claims prefix .. 'claim:' .. id)
-- KEYS[2] waiting  KEYS[3] delayed  KEYS[4] active  KEYS[5] dead  KEYS[6] idem
-- KEYS[7] epoch    KEYS[8] owner    KEYS[9] claimseq
-- ARGV    max, epoch (0 = an unmanaged worker), max_stalls
-- Returns {outcome, current_epoch, next_due_in_ms, then 6 per job: token, name, payload,
-- max_attempts, lease_ms, timeout_ms}; the token "<attempt>:<started_ms>:<claimseq>.<id>"
-- carries the job's id and attempt. outcome 0 = claimed, 1 = stale epoch, 2 = owned
-- (an epoch-0 claim while an owner lease exists); only 0 claims.
--
--   epoch > 0 and epoch ~= GET epoch   -> stale: claim nothing
--   epoch == 0 and EXISTS owner        -> owned: claim nothing
--   due delayed jobs -> waiting; expired leases -> waiting or dead   (bounded, as reap.lua)
--   ZRANGE + ZREMRANGEBYRANK waiting: the first max jobs; per job one HMGET of its spec;
--   then for the whole batch one MSET claim:<id> = token and one ZADD active deadline id
--
-- Why fencing lives here: the owner lease alone never guarantees one owner (a paused
-- supervisor outlives its TTL). Checking the epoch in the same atomic step that hands out
-- jobs means a stale owner's worker can never receive a job, whatever it believes.
-- Why the reaper's work happens here too: a queue with a live worker needs no separate
-- timer to make delayed jobs due or to take back stalled ones; each claim does a bounded
-- share of it.
-- Why the claim lives outside the job hash: writing the job hash costs one command per job,
-- and a claim is written, checked and removed once per job on the hot path. A claim is the
-- string claim:<id> = "<attempt>:<started_ms>:<claimseq>.<id>", the token itself: the job
-- is active exactly while that key exists, and its lease deadline is its score in active.
-- The job hash keeps its state and attempts of before the claim; whatever ends the claim
-- (finish, reap, cancel) writes the attempt and start time into the hash in the command
-- that records the new state, and release needs to write nothing. claimseq grows once per
-- call, so the token of an older claim of the same job never matches again.
local prefix, waiting, delayed, active, dead, idem, epoch_key, owner, claimseq = unpack(KEYS)
local max, epoch, max_stalls = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local current = tonumber(redis.call('GET', epoch_key) or '0')
if epoch > 0 and epoch ~= current then return {1, current, -1} end
if epoch == 0 and redis.call('EXISTS', owner) == 1 then return {2, current, -1} end

local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local BAND = 4398046511104
local jobs = prefix .. 'job:'
local claims = prefix .. 'claim:'

-- unpack is bounded by Lua's C stack (8000 slots): pass at most 4000 arguments at a time.
local function bulk(command, key, args, n)
  for i = 1, n, 4000 do
    redis.call(command, key, unpack(args, i, math.min(i + 3999, n)))
  end
end
local function bulk_keys(command, args, n)
  for i = 1, n, 4000 do
    redis.call(command, unpack(args, i, math.min(i + 3999, n)))
  end
end
local function mget(keys)
  local values, n = {}, #keys
  for i = 1, n, 4000 do
    local part = redis.call('MGET', unpack(keys, i, math.min(i + 3999, n)))
    for j = 1, #part do values[i + j - 1] = part[j] end
  end
  return values
end

-- promote_due and reap_expired are the same in reap.lua: scripts cannot share code.
local function promote_due(limit)
  local ids = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)
  local scored = {}
  for i, id in ipairs(ids) do
    local job = jobs .. id
    local priority = tonumber(redis.call('HGET', job, 'priority')) or 0
    redis.call('HSET', job, 'state', 'waiting')
    scored[i * 2 - 1], scored[i * 2] = (priority + 1000) * BAND + id, id
  end
  bulk('ZREM', delayed, ids, #ids)
  bulk('ZADD', waiting, scored, #scored)
  return #ids
end

-- A lease expired: its worker neither finished nor renewed in time (crashed, hung, cut off
-- from Redis). The job goes back to its place in waiting and counts a stall; after
-- max_stalls the job itself is the likely cause (it kills or hangs its worker), so it goes
-- dead instead of taking down worker after worker. The claim ends here: its attempt and
-- start time go into the job hash, and its key is deleted.
local function reap_expired(limit)
  local ids = redis.call('ZRANGEBYSCORE', active, '-inf', '(' .. now, 'LIMIT', 0, limit)
  if #ids == 0 then return 0, 0 end
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = claims .. id end
  local tokens = mget(keys)
  local back, buried, nback, nburied = {}, {}, 0, 0
  for i, id in ipairs(ids) do
    local job = jobs .. id
    local f = redis.call('HMGET', job, 'stalls', 'priority', 'idem')
    local stalls = (tonumber(f[1]) or 0) + 1
    local fields
    if stalls >= max_stalls then
      fields = {'state', 'dead', 'stalls', stalls, 'finished_ms', now,
                'error', 'stalled ' .. stalls ..
                  ' times: lease expired without renewal (worker crashed or hung)'}
      if f[3] and redis.call('HGET', idem, f[3]) == id then redis.call('HDEL', idem, f[3]) end
      buried[nburied + 1], buried[nburied + 2] = now, id
      nburied = nburied + 2
    else
      fields = {'state', 'waiting', 'stalls', stalls, 'error', 'lease expired (stall ' .. stalls .. ')'}
      back[nback + 1], back[nback + 2] = ((tonumber(f[2]) or 0) + 1000) * BAND + id, id
      nback = nback + 2
    end
    local attempt, started = string.match(tokens[i] or '', '^(%d+):(%d+):')
    if attempt then
      fields[#fields + 1], fields[#fields + 2] = 'attempts', attempt
      fields[#fields + 1], fields[#fields + 2] = 'started_ms', started
    end
    redis.call('HSET', job, unpack(fields))
  end
  bulk_keys('DEL', keys, #keys)
  bulk('ZREM', active, ids, #ids)
  bulk('ZADD', waiting, back, nback)
  bulk('ZADD', dead, buried, nburied)
  return nback / 2, nburied / 2
end

promote_due(1000)
reap_expired(100)

local out = {0, current, -1}
local ids = {}
if max > 0 then ids = redis.call('ZRANGE', waiting, 0, max - 1) end
if #ids > 0 then
  -- ZRANGE + ZREMRANGEBYRANK rather than ZPOPMIN: the scores ZPOPMIN returns would be
  -- formatted as text for nothing, which costs more than both commands.
  redis.call('ZREMRANGEBYRANK', waiting, 0, #ids - 1)
  -- Numbers passed to redis.call are formatted with %.17g, which costs as much as the call
  -- itself. A batch shares a few attempt counts and lease lengths: convert each value once.
  local fmt, call = string.format, redis.call
  local attempts_text, deadlines = {}, {}
  local middle = ':' .. fmt('%d', now) .. ':' .. call('INCR', claimseq) .. '.'
  local tokens, leases, ntokens, nleases, nout = {}, {}, 0, 0, 3
  for i = 1, #ids do
    local id = ids[i]
    local f = call('HMGET', jobs .. id, 'name', 'payload', 'max_attempts', 'lease_ms',
                   'timeout_ms', 'attempts')
    -- A waiting entry without its hash was left by a hand edit; drop it, never claim it.
    if f[1] then
      local attempt = (tonumber(f[6]) or 0) + 1
      local attempt_text = attempts_text[attempt]
      if not attempt_text then
        attempt_text = fmt('%d', attempt)
        attempts_text[attempt] = attempt_text
      end
      local lease = f[4]
      local deadline = deadlines[lease]
      if not deadline then
        deadline = fmt('%d', now + lease)
        deadlines[lease] = deadline
      end
      local token = attempt_text .. middle .. id
      tokens[ntokens + 1], tokens[ntokens + 2] = claims .. id, token
      ntokens = ntokens + 2
      leases[nleases + 1], leases[nleases + 2] = deadline, id
      nleases = nleases + 2
      -- The token carries the id and the attempt.
      out[nout + 1], out[nout + 2], out[nout + 3] = token, f[1], f[2]
      out[nout + 4], out[nout + 5], out[nout + 6] = f[3], lease, f[5] or '0'
      nout = nout + 6
    end
  end
  bulk_keys('MSET', tokens, ntokens)
  bulk('ZADD', active, leases, nleases)
end

-- When something becomes claimable without a new submission: the first delayed job or
-- the first lease deadline, so an idle worker knows how long it may sleep.
local next_due = -1
for _, set in ipairs({delayed, active}) do
  local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
  if first[2] then
    local due = math.max(tonumber(first[2]) - now, 0)
    if next_due < 0 or due < next_due then next_due = due end
  end
end
out[3] = next_due
return out
