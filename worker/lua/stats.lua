-- Count the jobs in each state and find how long the oldest waiting job has waited.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id)
-- KEYS[2] waiting  KEYS[3] delayed  KEYS[4] active  KEYS[5] completed  KEYS[6] dead
-- KEYS[7] cancelled  KEYS[8] epoch
-- Returns {waiting, delayed, active, completed, dead, cancelled, oldest_waiting_age_ms
-- (-1 when nothing waits), current_epoch}.
--
--   band = first waiting score / 2^42; oldest = its id
--   repeat: first member with score >= (band + 1) * 2^42 -> next band; oldest = min(ids)
--   age = now - created_ms of the oldest
--
-- Why walk the bands: waiting is ordered by priority first, so the head of the set is the
-- next job to run, not the oldest. Ids increase with submission, so the oldest job is the
-- smallest id over all priority bands, and each band's smallest id is its first member:
-- one lookup per priority in use (at most 2001), never a scan of the set.
local prefix, waiting, delayed, active, completed, dead, cancelled, epoch = unpack(KEYS)
local BAND = 4398046511104
local out = {}
for i, set in ipairs({waiting, delayed, active, completed, dead, cancelled}) do
  out[i] = redis.call('ZCARD', set)
end

local oldest
local first = redis.call('ZRANGE', waiting, 0, 0, 'WITHSCORES')
while first[1] do
  local id = tonumber(first[1])
  if not oldest or id < oldest then oldest = id end
  local next_band = (math.floor(tonumber(first[2]) / BAND) + 1) * BAND
  first = redis.call('ZRANGEBYSCORE', waiting, next_band, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
end
out[7] = -1
if oldest then
  local created = tonumber(redis.call('HGET', prefix .. 'job:' .. oldest, 'created_ms'))
  if created then
    local t = redis.call('TIME')
    out[7] = math.max(t[1] * 1000 + math.floor(t[2] / 1000) - created, 0)
  end
end
out[8] = tonumber(redis.call('GET', epoch) or '0')
return out
