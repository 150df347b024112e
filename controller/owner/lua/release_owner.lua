-- Compare-and-delete: release the owner lease only if ARGV holder still holds it at
-- ARGV epoch, so a slow process that lost its lease can never delete its successor's.
--
-- KEYS[1] owner;  ARGV holder, epoch.  Returns 1 when released, 0 otherwise.
local h = redis.call('HMGET', KEYS[1], 'holder', 'epoch')
if h[1] == ARGV[1] and h[2] == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
