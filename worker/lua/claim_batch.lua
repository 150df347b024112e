-- Uses prelude.lua
-- Claim up to max jobs for one worker, fenced by the owner's epoch.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id, claims prefix .. 'claim:'
--         .. id: see prelude.lua)
-- KEYS[2] waiting  KEYS[3] delayed  KEYS[4] active  KEYS[5] dead  KEYS[6] cancelled
-- KEYS[7] idem     KEYS[8] idem_expiry  KEYS[9] epoch  KEYS[10] owner  KEYS[11] claimseq
-- ARGV    max, epoch (0 = an unmanaged worker), max_stalls
-- Returns {outcome, current_epoch, next_due_in_ms, then 6 per job: token, name, payload,
-- max_attempts, lease_ms, timeout_ms}; the token "<attempt>:<started_ms>:<claimseq>.<id>"
-- carries the job's id and attempt. outcome 0 = claimed, 1 = stale epoch, 2 = owned
-- (an epoch-0 claim while an owner lease exists); only 0 claims.
--
--   epoch > 0 and epoch ~= GET epoch   -> stale: claim nothing
--   epoch == 0 and EXISTS owner        -> owned: claim nothing
--   due delayed jobs -> waiting; expired leases -> waiting or dead   (bounded, as reap.lua)
--   ZRANGE + ZREMRANGEBYRANK waiting: the first max jobs (members are ids behind a letter,
--   prelude.lua); per job one HMGET of its spec;
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
-- (finish, reap) writes the attempt and start time into the hash in the command that
-- records the new state, and release needs to write nothing. A cancel marks the claim
-- (prelude.lua's CANCELLED), which then ends when the worker reports or the lease runs out.
-- claimseq grows once per call, so the token of an older claim of the same job never
-- matches again.
local prefix, waiting, delayed, active, dead, cancelled, idem, idem_expiry, epoch_key, owner,
      claimseq = unpack(KEYS)
local max, epoch, max_stalls = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local current = tonumber(call('GET', epoch_key) or '0')
if epoch > 0 and epoch ~= current then return {1, current, -1} end
if epoch == 0 and call('EXISTS', owner) == 1 then return {2, current, -1} end

local now = now_ms()
local jobs = prefix .. 'job:'
local claims = prefix .. 'claim:'
local q = {now = now, jobs = jobs, claims = claims, waiting = waiting, delayed = delayed,
           active = active, dead = dead, cancelled = cancelled, idem = idem,
           idem_expiry = idem_expiry}

promote_due(q, 1000)
reap_expired(q, 100, max_stalls)

local out = {0, current, -1}
local ids = {}
if max > 0 then ids = call('ZRANGE', waiting, 0, max - 1) end
if #ids > 0 then
  -- ZRANGE + ZREMRANGEBYRANK rather than ZPOPMIN: the scores ZPOPMIN returns would be
  -- formatted as text for nothing, which costs more than both commands.
  call('ZREMRANGEBYRANK', waiting, 0, #ids - 1)
  -- Numbers passed to redis.call are formatted with %.17g, which costs as much as the call
  -- itself. A batch shares a few attempt counts and lease lengths: convert each value once.
  local attempts_text, deadlines = {}, {}
  local middle = ':' .. fmt('%d', now) .. ':' .. call('INCR', claimseq) .. '.'
  local tokens, leases, ntokens, nleases, nout = {}, {}, 0, 0, 3
  for i = 1, #ids do
    local id = sub(ids[i], 2)  -- waiting_id, inline on the hot path
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
  local first = call('ZRANGE', set, 0, 0, 'WITHSCORES')
  if first[2] then
    local due = math.max(tonumber(first[2]) - now, 0)
    if next_due < 0 or due < next_due then next_due = due end
  end
end
out[3] = next_due
return out
