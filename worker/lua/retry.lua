-- Uses prelude.lua
-- Give a dead job another full set of attempts.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id, claims prefix .. 'claim:'
--         .. id: see prelude.lua)
-- KEYS[2] dead  KEYS[3] waiting  KEYS[4] idem  KEYS[5] idem_expiry  KEYS[6] wake
-- ARGV[1] id
-- Returns 1 when the job is waiting again, 0 when there is no such job; error "LK job
-- 'ID' is <state>, only dead jobs can be retried" otherwise.
--
--   dead -> waiting at its original place; attempts 0, stalls 0, last error and attempt
--           errors kept
--   its idempotency key is taken back, for a new window, only if no other job holds it
--   LPUSH wake 1; LTRIM wake 0 0
--
-- Why the key is taken back only when free: going dead freed it, and a resubmit may since
-- have created a new job under it; two live jobs must never share one key.
local prefix, dead, waiting, idem, idem_expiry, wake = unpack(KEYS)
local id = ARGV[1]
local q = {now = now_ms(), jobs = prefix .. 'job:', claims = prefix .. 'claim:', idem = idem,
           idem_expiry = idem_expiry}
local job = q.jobs .. id
local f = call('HMGET', job, 'state', 'priority', 'idem', 'idem_window_ms')
local state = f[1]
if not state then return 0 end
-- A claimed job is active whatever its hash says: a claim does not write the hash.
if call('EXISTS', q.claims .. id) == 1 then state = 'active' end
if state ~= 'dead' then
  return redis.error_reply("LK job '" .. id .. "' is " .. state ..
                           ', only dead jobs can be retried')
end

call('HSET', job, 'state', 'waiting', 'attempts', 0, 'stalls', 0)
call('HDEL', job, 'finished_ms')
if f[3] and not key_holder(q, f[3]) then
  take_key(q, f[3], id, tonumber(f[4]) or DEFAULT_KEY_WINDOW)
end
call('ZREM', dead, id)
call('ZADD', waiting, f[2] or '0', waiting_member(id))
call('LPUSH', wake, 1)
call('LTRIM', wake, 0, 0)
return 1
