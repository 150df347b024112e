-- Extend the owner lease held by ARGV holder at ARGV epoch.
--
-- KEYS[1] owner, KEYS[2] epoch, KEYS[3] regressed (see acquire_owner.lua)
-- ARGV    ttl_ms, holder, epoch, role, concurrency, max_rss_mb, since_ms, lost ('1': the
--         caller knows Redis lost writes it saw — a failover to a replica behind them,
--         owner_lease.cc — else '0'), what (the record's text when lost is '1')
-- Returns 1 when still the owner, 0 when lost, -1 when Redis lost writes this owner had
-- seen: the caller must take the lease again (acquire_owner.lua) under a new epoch.
--
-- If the lease key expired (the holder was slow to renew) but nobody took it since — the
-- epoch is still ours — the holder may recreate it: no other worker can have claimed in
-- between, because any new owner would have moved the epoch on. Once the epoch moved on,
-- the lease is lost for good and the caller must stop its worker.
--
-- An epoch below ours can only mean that Redis lost writes (epochs only grow), and so
-- does a regressed record naming an epoch at or above ours (a worker's claim found it
-- first, claim_batch.lua). Either way the history our epoch belongs to is gone: the epoch
-- is raised past ours (unless someone did so already) and the lease record dropped, so
-- that no worker of either history passes the fence until an owner takes a new epoch.
local ttl, mine = tonumber(ARGV[1]), tonumber(ARGV[3])
local found = tonumber(redis.call('GET', KEYS[2]) or '0')
local lost = tonumber(redis.call('HGET', KEYS[3], 'epoch') or '0')
if found < mine or lost >= mine or ARGV[8] == '1' then
  if found <= mine then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    -- As record_regression in worker/lua/prelude.lua: the first notice's text stays.
    if redis.call('EXISTS', KEYS[3]) == 0 then
      local what = 'the owner epoch was ' .. found .. ', below ' .. mine .. ' already used'
      if ARGV[8] == '1' and found >= mine then what = ARGV[9] end
      redis.call('HSET', KEYS[3], 'found_epoch', found, 'at_ms', now, 'by', ARGV[2],
                 'what', what)
    end
    redis.call('HSET', KEYS[3], 'epoch', math.max(mine, lost))
    redis.call('PEXPIRE', KEYS[3], 86400000)
    redis.call('SET', KEYS[2], mine + 1)
    redis.call('DEL', KEYS[1])
  end
  return -1
end
if found ~= mine then return 0 end
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
