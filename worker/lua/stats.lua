-- Uses prelude.lua
-- Count the jobs in each state and find how long the oldest waiting job has waited.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id: see prelude.lua)
-- KEYS[2] waiting  KEYS[3] delayed  KEYS[4] active  KEYS[5] completed  KEYS[6] dead
-- KEYS[7] cancelled  KEYS[8] epoch
-- Returns {waiting, delayed, active, completed, dead, cancelled, oldest_waiting_age_ms
-- (-1 when nothing waits), current_epoch}.
--
--   first = the first waiting member; oldest = its id
--   repeat: the first member with a score above the last one's -> the next priority;
--           oldest = min(ids)
--   age = now - created_ms of the oldest
--
-- Why walk the priorities: waiting is ordered by priority first (its score), so the head
-- of the set is the next job to run, not the oldest. Ids increase with submission, so the
-- oldest job is the smallest id over all priorities, and each priority's smallest id is its
-- first member: one lookup per priority in use (at most 2001), never a scan of the set.
-- Members order as their ids do (prelude.lua), so the smallest id compares smallest as text.
local prefix, waiting, delayed, active, completed, dead, cancelled, epoch = unpack(KEYS)
local out = {}
for i, set in ipairs({waiting, delayed, active, completed, dead, cancelled}) do
  out[i] = call('ZCARD', set)
end

local oldest
local first = call('ZRANGE', waiting, 0, 0, 'WITHSCORES')
while first[1] do
  if not oldest or first[1] < oldest then oldest = first[1] end
  first = call('ZRANGEBYSCORE', waiting, '(' .. first[2], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
end
out[7] = -1
if oldest then
  local created = tonumber(call('HGET', prefix .. 'job:' .. waiting_id(oldest), 'created_ms'))
  if created then out[7] = math.max(now_ms() - created, 0) end
end
out[8] = tonumber(call('GET', epoch) or '0')
return out
