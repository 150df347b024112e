-- Extend the owner lease held by ARGV holder at ARGV epoch.
--
-- KEYS[1] owner, KEYS[2] epoch
-- ARGV    ttl_ms, holder, epoch, role, concurrency, max_rss_mb, since_ms
-- Returns 1 when still the owner, 0 when lost.
--
-- If the lease key expired (the holder was slow to renew) but nobody took it since — the
-- epoch is still ours — the holder may recreate it: no other worker can have claimed in
-- between, because any new owner would have moved the epoch on. Once the epoch moved on,
-- the lease is lost for good and the caller must stop its worker.
local ttl = tonumber(ARGV[1])
if tostring(redis.call('GET', KEYS[2])) ~= ARGV[3] then return 0 end
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder then
  if holder ~= ARGV[2] then return 0 end
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
redis.call('HSET', KEYS[1], 'role', ARGV[4], 'holder', ARGV[2], 'epoch', ARGV[3],
           'since_ms', ARGV[7], 'concurrency', ARGV[5], 'max_rss_mb', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
