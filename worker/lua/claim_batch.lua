-- Claim up to max jobs for one worker, fenced by the owner's epoch.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id)
-- KEYS[2] waiting  KEYS[3] delayed  KEYS[4] active  KEYS[5] dead  KEYS[6] idem
-- KEYS[7] epoch    KEYS[8] owner    KEYS[9] claimseq
-- ARGV    max, epoch (0 = an unmanaged worker), max_stalls
-- Returns {outcome, current_epoch, next_due_in_ms, then 8 per job: id, name, payload,
-- token, attempt, max_attempts, lease_ms, timeout_ms}. outcome 0 = claimed, 1 = stale
-- epoch, 2 = owned (an epoch-0 claim while an owner lease exists); only 0 claims.
--
--   epoch > 0 and epoch ~= GET epoch   -> stale: claim nothing
--   epoch == 0 and EXISTS owner        -> owned: claim nothing
--   due delayed jobs -> waiting; expired leases -> waiting or dead   (bounded, as reap.lua)
--   ZPOPMIN waiting max; per job: attempts+1, state active, token, deadline; ZADD active
--
-- Why fencing lives here: the owner lease alone never guarantees one owner (a paused
-- supervisor outlives its TTL). Checking the epoch in the same atomic step that hands out
-- jobs means a stale owner's worker can never receive a job, whatever it believes.
-- Why the reaper's work happens here too: a queue with a live worker needs no separate
-- timer to make delayed jobs due or to take back stalled ones; each claim does a bounded
-- share of it. The token "<claimseq>.<id>" is unique per claim (claimseq grows once per
-- call), so Finish and Renew of an older claim of the same job are refused.
local prefix, waiting, delayed, active, dead, idem, epoch_key, owner, claimseq = unpack(KEYS)
local max, epoch, max_stalls = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local current = tonumber(redis.call('GET', epoch_key) or '0')
if epoch > 0 and epoch ~= current then return {1, current, -1} end
if epoch == 0 and redis.call('EXISTS', owner) == 1 then return {2, current, -1} end

local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local BAND = 4398046511104
local jobs = prefix .. 'job:'

-- unpack is bounded by Lua's C stack (8000 slots): pass at most 4000 arguments at a time.
local function bulk(command, key, args, n)
  for i = 1, n, 4000 do
    redis.call(command, key, unpack(args, i, math.min(i + 3999, n)))
  end
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
-- dead instead of taking down worker after worker.
local function reap_expired(limit)
  local ids = redis.call('ZRANGEBYSCORE', active, '-inf', '(' .. now, 'LIMIT', 0, limit)
  local back, buried, nback, nburied = {}, {}, 0, 0
  for _, id in ipairs(ids) do
    local job = jobs .. id
    local f = redis.call('HMGET', job, 'stalls', 'priority', 'idem')
    local stalls = (tonumber(f[1]) or 0) + 1
    if stalls >= max_stalls then
      redis.call('HSET', job, 'state', 'dead', 'stalls', stalls, 'token', '', 'finished_ms', now,
                 'error', 'stalled ' .. stalls ..
                   ' times: lease expired without renewal (worker crashed or hung)')
      if f[3] and redis.call('HGET', idem, f[3]) == id then redis.call('HDEL', idem, f[3]) end
      buried[nburied + 1], buried[nburied + 2] = now, id
      nburied = nburied + 2
    else
      redis.call('HSET', job, 'state', 'waiting', 'stalls', stalls, 'token', '',
                 'error', 'lease expired (stall ' .. stalls .. ')')
      back[nback + 1], back[nback + 2] = ((tonumber(f[2]) or 0) + 1000) * BAND + id, id
      nback = nback + 2
    end
  end
  bulk('ZREM', active, ids, #ids)
  bulk('ZADD', waiting, back, nback)
  bulk('ZADD', dead, buried, nburied)
  return nback / 2, nburied / 2
end

promote_due(1000)
reap_expired(100)

local out = {0, current, -1}
local popped = {}
if max > 0 then popped = redis.call('ZPOPMIN', waiting, max) end
if #popped > 0 then
  -- Numbers passed to redis.call are formatted with %.17g, which costs as much as the call
  -- itself. A batch shares a few attempt counts and lease lengths: convert each value once.
  local texts = {}
  local function text(x)
    local s = texts[x]
    if not s then
      s = string.format('%d', x)
      texts[x] = s
    end
    return s
  end
  local now_text = text(now)
  local token_prefix = redis.call('INCR', claimseq) .. '.'
  local leases, nleases, nout = {}, 0, 3
  for i = 1, #popped, 2 do
    local id = popped[i]
    local job = jobs .. id
    local f = redis.call('HMGET', job, 'name', 'payload', 'max_attempts', 'lease_ms',
                         'timeout_ms', 'attempts')
    -- A waiting entry without its hash was left by a hand edit; drop it, never claim it.
    if f[1] then
      local attempt = (tonumber(f[6]) or 0) + 1
      local token = token_prefix .. id
      local deadline = text(now + f[4])
      redis.call('HSET', job, 'state', 'active', 'attempts', text(attempt), 'token', token,
                 'started_ms', now_text, 'deadline_ms', deadline)
      leases[nleases + 1], leases[nleases + 2] = deadline, id
      nleases = nleases + 2
      out[nout + 1], out[nout + 2], out[nout + 3], out[nout + 4] = id, f[1], f[2], token
      out[nout + 5], out[nout + 6], out[nout + 7], out[nout + 8] = attempt, f[3], f[4], f[5] or '0'
      nout = nout + 8
    end
  end
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
