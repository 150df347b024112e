-- Uses prelude.lua
-- Extend the leases of jobs a worker is still running.
--
-- KEYS[1] prefix "lk:{Q}:" (claims are prefix .. 'claim:' .. id: see prelude.lua)
-- KEYS[2] active
-- ARGV[1] n, then 3 per job: id, token, lease_ms
-- Returns {held1, held2, ...}: 1 lease extended to now + lease_ms; 0 the claim is gone.
--
--   token == GET claim:<id>  -> ZADD active XX now + lease (the score is the deadline)
--   otherwise                -> 0: the job was cancelled or reclaimed after a stall, and
--                               the worker stops its handler
--
-- Why renewal answers "still held": it is how a running handler learns that its job was
-- taken back after a stall, without any other channel. (A cancel is noticed sooner: the
-- worker reads its running jobs' claims every 250 ms, JobQueue::CheckClaims.)
local prefix, active = KEYS[1], KEYS[2]
local n = tonumber(ARGV[1])
local now = now_ms()

local keys = {}
for i = 1, n do keys[i] = prefix .. 'claim:' .. ARGV[i * 3 - 1] end
local current = mget(keys)

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
      deadline = fmt('%d', now + lease)
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
  call('ZADD', active, 'XX', unpack(leases, i, math.min(i + 3999, nleases)))
end
return held
