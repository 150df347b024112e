-- Take a queue's owner lease if nobody holds it.
--
-- KEYS[1] owner  (hash: role, holder, epoch, since_ms, concurrency, max_rss_mb)
-- KEYS[2] epoch  (string integer: the current owner epoch, shared with claim_batch.lua)
-- KEYS[3] regressed (hash: the record of a Redis that lost writes; see below)
-- ARGV    ttl_ms, role, holder, concurrency, max_rss_mb, floor (the highest epoch this
--         process has seen on this queue; 0 when none)
-- Returns {1, epoch, regressed (1|0), epoch found} when taken, or
-- {0, role, holder, epoch, since_ms, pttl} of the holder.
--
--   found = GET epoch
--   found >= floor and EXISTS owner     -> held by someone: answer who
--   found < floor                       -> Redis lost writes: record it (regressed), and
--                                          take the lease whoever the record names (it is
--                                          of a history no live role trusts any more)
--   epoch = max(found, floor) + 1; SET epoch; HSET owner; PEXPIRE owner ttl
--
-- Why the epoch: a lease alone never guarantees one owner — a supervisor paused for longer
-- than its TTL still believes it owns the queue when it wakes. Every acquisition therefore
-- takes a new epoch, and every claim checks the claimer's epoch against it in the same
-- script that hands out jobs, so a stale owner's worker gets nothing (fencing).
-- Why the floor: a Redis that lost acknowledged writes (a failover to a replica that had
-- not seen them, a restart without persistence, a restore from an older snapshot) can
-- hold an older epoch than one already handed out. INCR would then give out that epoch a
-- second time, and the worker that still runs with it would pass the fence beside the new
-- one. Every role remembers the highest epoch it has seen; taking max(found, floor) + 1
-- means no epoch any live role has seen is ever given out again.
local ttl, floor = tonumber(ARGV[1]), tonumber(ARGV[6]) or 0
local found = tonumber(redis.call('GET', KEYS[2]) or '0')
local regressed = found < floor
if not regressed and redis.call('EXISTS', KEYS[1]) == 1 then
  local h = redis.call('HMGET', KEYS[1], 'role', 'holder', 'epoch', 'since_ms')
  return {0, h[1] or '', h[2] or '', h[3] or '0', h[4] or '0', redis.call('PTTL', KEYS[1])}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if regressed then
  -- As record_regression in worker/lua/prelude.lua: the first notice's text stays.
  local lost = math.max(floor, tonumber(redis.call('HGET', KEYS[3], 'epoch') or '0'))
  if redis.call('EXISTS', KEYS[3]) == 0 then
    redis.call('HSET', KEYS[3], 'found_epoch', found, 'at_ms', now, 'by', ARGV[3],
               'what', 'the owner epoch was ' .. found .. ', below ' .. floor .. ' already used')
  end
  redis.call('HSET', KEYS[3], 'epoch', lost)
  redis.call('PEXPIRE', KEYS[3], 86400000)
end
local epoch = math.max(found, floor) + 1
redis.call('SET', KEYS[2], epoch)
redis.call('HSET', KEYS[1], 'role', ARGV[2], 'holder', ARGV[3], 'epoch', epoch,
           'since_ms', now, 'concurrency', ARGV[4], 'max_rss_mb', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, epoch, regressed and 1 or 0, found}
