-- Take a queue's owner lease if nobody holds it.
--
-- KEYS[1] owner  (hash: role, holder, epoch, since_ms, concurrency, max_rss_mb)
-- KEYS[2] epoch  (string integer: the current owner epoch, shared with claim_batch.lua)
-- ARGV    ttl_ms, role, holder, concurrency, max_rss_mb
-- Returns {1, epoch} when taken, or {0, role, holder, epoch, since_ms, pttl} of the holder.
--
-- Why the epoch: a lease alone never guarantees one owner — a supervisor paused for longer
-- than its TTL still believes it owns the queue when it wakes. Every acquisition therefore
-- increments the epoch, and every claim checks the claimer's epoch against it in the same
-- script that hands out jobs, so a stale owner's worker gets nothing (fencing).
local ttl = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  local h = redis.call('HMGET', KEYS[1], 'role', 'holder', 'epoch', 'since_ms')
  return {0, h[1] or '', h[2] or '', h[3] or '0', h[4] or '0', redis.call('PTTL', KEYS[1])}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'role', ARGV[2], 'holder', ARGV[3], 'epoch', epoch,
           'since_ms', now, 'concurrency', ARGV[4], 'max_rss_mb', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, epoch}
