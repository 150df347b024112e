-- Take back what no worker will finish: expired leases and due delayed jobs.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id, claims prefix .. 'claim:' .. id)
-- KEYS[2] waiting  KEYS[3] delayed  KEYS[4] active  KEYS[5] dead  KEYS[6] idem  KEYS[7] wake
-- ARGV    max (per kind of work), max_stalls
-- Returns how many jobs it moved (to waiting or, after max_stalls, to dead).
--
--   delayed jobs with run_at <= now          -> waiting (their original place)
--   active jobs with lease deadline < now    -> stalls+1; waiting, or dead at max_stalls;
--                                               the claim's attempt and start time go into
--                                               the job hash, claim:<id> is deleted
--   LPUSH wake 1; LTRIM wake 0 0 when anything became waiting
--
-- Why a separate script when every claim already does this: a queue whose worker is gone
-- or fenced claims nothing, so its stalled jobs would sit in active forever. The reaper
-- needs no epoch: it only moves jobs between sets, it never hands one out. Time is Redis's
-- own clock, so leases mean the same on every host.
local prefix, waiting, delayed, active, dead, idem, wake = unpack(KEYS)
local max, max_stalls = tonumber(ARGV[1]), tonumber(ARGV[2])
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

-- promote_due and reap_expired are the same in claim_batch.lua: scripts cannot share code.
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

local promoted = promote_due(max)
local returned, buried = reap_expired(max)
if promoted + returned > 0 then
  redis.call('LPUSH', wake, 1)
  redis.call('LTRIM', wake, 0, 0)
end
return promoted + returned + buried
