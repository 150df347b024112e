-- Extend the leases of jobs a worker is still running.
--
-- KEYS[1] prefix "lk:{Q}:" (claims are prefix .. 'claim:' .. id)   KEYS[2] active
-- ARGV[1] n, then 3 per job: id, token, lease_ms
-- Returns {held1, held2, ...}: 1 lease extended to now + lease_ms; 0 the claim is gone.
--
--   token == GET claim:<id>  -> ZADD active XX now + lease (the score is the deadline)
--   otherwise                -> 0: the job was cancelled or reclaimed after a stall, and
--                               the worker stops its handler
--
-- Why renewal answers "still held": it is how a running handler learns that its job was
-- cancelled or taken back, within one renewal interval, without any other channel.
local prefix, active = KEYS[1], KEYS[2]
local n = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)

local keys = {}
for i = 1, n do keys[i] = prefix .. 'claim:' .. ARGV[i * 3 - 1] end
local current = {}
-- unpack is bounded by Lua's C stack (8000 slots): pass at most 4000 arguments at a time.
for i = 1, n, 4000 do
  local part = redis.call('MGET', unpack(keys, i, math.min(i + 3999, n)))
  for j = 1, #part do current[i + j - 1] = part[j] end
end

-- Numbers passed to redis.call are formatted with %.17g, which costs as much as the call
-- itself; the renewals of a batch share a few lease lengths, so each deadline is turned
-- into text once.
local deadlines = {}
local held, leases, nleases = {}, {}, 0
for i = 1, n do
  local b = 1 + (i - 1) * 3
  if current[i] == ARGV[b + 2] then
    local lease = ARGV[b + 3]
    local deadline = deadlines[lease]
    if not deadline then
      deadline = string.format('%d', now + lease)
      deadlines[lease] = deadline
    end
    leases[nleases + 1], leases[nleases + 2] = deadline, ARGV[b + 1]
    nleases = nleases + 2
    held[i] = 1
  else
    held[i] = 0
  end
end
for i = 1, nleases, 4000 do
  redis.call('ZADD', active, 'XX', unpack(leases, i, math.min(i + 3999, nleases)))
end
return held
