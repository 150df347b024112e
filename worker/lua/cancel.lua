-- Uses prelude.lua
-- Cancel a job that has not finished.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id, claims prefix .. 'claim:'
--         .. id: see prelude.lua)
-- KEYS[2] waiting  KEYS[3] delayed  KEYS[4] cancelled  KEYS[5] idem  KEYS[6] idem_expiry
-- ARGV[1] id
-- Returns 1 when cancelled, 2 when cancelled while active (its worker stops the handler),
-- 0 when there is no such job; error "LK job 'ID' is already <state>" for a completed,
-- dead or cancelled job.
--
--   waiting | delayed -> cancelled: ZREM from its set, ZADD cancelled, idempotency key freed
--   active            -> state cancelled, the claim's attempt and start time in the job
--                        hash; claim:<id> = token .. CANCELLED (prelude.lua); the job stays
--                        in active, holding its key, until the claim ends
--
-- A job is active while claim:<id> exists, whatever its hash says (a claim does not write
-- the hash). Why an active job is not finished at once: its handler is still running. The
-- worker notices the marked claim within 500 ms (it reads its running jobs' claims), stops
-- the handler and reports; that report, refused as an outcome, ends the claim: only then
-- does the job enter the cancelled set and free its idempotency key, so that a resubmit
-- cannot run the work while the cancelled run is still doing it. A worker that died
-- leaves the claim to the reaper when its lease expires. The marked claim no longer
-- matches the worker's token, so a late completion cannot overwrite the cancellation.
local prefix, waiting, delayed, cancelled, idem, idem_expiry = unpack(KEYS)
local id = ARGV[1]
local q = {now = now_ms(), jobs = prefix .. 'job:', claims = prefix .. 'claim:', idem = idem,
           idem_expiry = idem_expiry}
local job = q.jobs .. id
local claim = q.claims .. id
local f = call('HMGET', job, 'state', 'idem')
local state = f[1]
if not state then return 0 end
local token = call('GET', claim)
if token and sub(token, -#CANCELLED) ~= CANCELLED then
  local attempts, started = string.match(token, '^(%d+):(%d+):')
  call('HSET', job, 'state', 'cancelled', 'attempts', attempts, 'started_ms', started)
  call('SET', claim, token .. CANCELLED)
  return 2
end
local from = ({waiting = waiting, delayed = delayed})[state]
if not from then return redis.error_reply("LK job '" .. id .. "' is already " .. state) end

local now_text = fmt('%d', q.now)
call('HSET', job, 'state', 'cancelled', 'finished_ms', now_text)
call('ZREM', from, from == waiting and waiting_member(id) or id)
call('ZADD', cancelled, now_text, id)
release_key(q, f[2], id)
return 1
