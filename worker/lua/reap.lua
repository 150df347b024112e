-- Uses prelude.lua
-- Take back what no worker will finish: expired leases and due delayed jobs.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id, claims prefix .. 'claim:'
--         .. id: see prelude.lua)
-- KEYS[2] waiting  KEYS[3] delayed  KEYS[4] active  KEYS[5] dead  KEYS[6] cancelled
-- KEYS[7] idem     KEYS[8] idem_expiry  KEYS[9] wake
-- ARGV    max (per kind of work), max_stalls
-- Returns how many jobs it moved (to waiting, to dead, or a cancelled job's claim ended).
--
--   delayed jobs with run_at <= now          -> waiting (their original place)
--   active jobs with lease deadline < now    -> a stall: waiting, or dead when out of
--                                               attempts or at max_stalls; a cancelled
--                                               job's claim just ends (prelude.lua)
--   LPUSH wake 1; LTRIM wake 0 0 when anything became waiting
--
-- Why a separate script when every claim already does this: a queue whose worker is gone
-- or fenced claims nothing, so its stalled jobs would sit in active forever. The reaper
-- needs no epoch: it only moves jobs between sets, it never hands one out. Time is Redis's
-- own clock, so leases mean the same on every host.
local prefix, waiting, delayed, active, dead, cancelled, idem, idem_expiry, wake = unpack(KEYS)
local max, max_stalls = tonumber(ARGV[1]), tonumber(ARGV[2])
local q = {now = now_ms(), jobs = prefix .. 'job:', claims = prefix .. 'claim:',
           waiting = waiting, delayed = delayed, active = active, dead = dead,
           cancelled = cancelled, idem = idem, idem_expiry = idem_expiry}

local promoted = promote_due(q, max)
local returned, ended = reap_expired(q, max, max_stalls)
if promoted + returned > 0 then
  call('LPUSH', wake, 1)
  call('LTRIM', wake, 0, 0)
end
return promoted + returned + ended
