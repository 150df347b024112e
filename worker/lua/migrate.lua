-- Uses prelude.lua
-- Bring a queue stored by an older lanekeeper to the current key layout, a bounded step
-- per call; JobQueue calls it when it opens the queue, until it answers done.
--
-- KEYS[1] prefix "lk:{Q}:"  KEYS[2] waiting  KEYS[3] idem  KEYS[4] idem_expiry
-- ARGV[1] step (entries per call), ARGV[2] cursor of the idem scan ('0' to start)
-- Returns {1, '0'} when the queue is at the current layout, else {0, cursor}: call again
-- with that cursor.
--
-- Layout 1 (lanekeeper before idempotency windows): waiting scored (priority + 1000) *
-- 2^42 + id with the plain id as member; idempotency keys had no expiry (trimming a
-- completed job freed its key). Layout 2: waiting scored by priority, members the id behind
-- a letter (prelude.lua); every key in idem has its expiry in idem_expiry.
--
--   first member of waiting is all digits -> layout 1: the first step entries move to
--                                   waiting:migrating, score floor(score / 2^42) - 1000,
--                                   member with its letter
--   waiting:migrating exists     -> ZUNIONSTORE it into waiting, DEL it
--   HLEN idem > ZCARD idem_expiry -> HSCAN idem from the cursor: a key without an expiry
--                                   gets now + 24 h
--   otherwise                    -> done: nothing is written, so opening a queue of the
--                                   current layout (doctor, jobs get) changes nothing
--
-- waiting:migrating is derived from KEYS[1] (see prelude.lua for why that is safe in
-- Redis Cluster). Why a second set: every entry left in waiting is then of layout 1. Why
-- it is safe to read layout-1 scores: they are below 2^53 (ids were below 2^42), so each is
-- an exact double and the priority and id come back exactly. Why bounded steps: a long
-- waiting set converted in one call would block Redis for as long. Writers of the old
-- layout must be stopped first (docs/queue.md); writers of this one finish the upgrade
-- before they write, so nothing else changes waiting meanwhile.
local prefix, waiting, idem, idem_expiry = unpack(KEYS)
local step, cursor = tonumber(ARGV[1]), ARGV[2]
local BAND = 4398046511104
local migrating = prefix .. 'waiting:migrating'

local first = call('ZRANGE', waiting, 0, 0)
if first[1] and find(first[1], '^%d') then
  local old = call('ZRANGE', waiting, 0, step - 1, 'WITHSCORES')
  local members, scored = {}, {}
  for i = 1, #old, 2 do
    members[#members + 1] = old[i]
    scored[i] = fmt('%d', math.floor(tonumber(old[i + 1]) / BAND) - 1000)
    scored[i + 1] = waiting_member(old[i])
  end
  bulk('ZREM', waiting, members, #members)
  bulk('ZADD', migrating, scored, #scored)
  return {0, cursor}
end
if call('EXISTS', migrating) == 1 then
  call('ZUNIONSTORE', waiting, 2, waiting, migrating)
  call('DEL', migrating)
end

if call('HLEN', idem) <= call('ZCARD', idem_expiry) then return {1, '0'} end
local scan = call('HSCAN', idem, cursor, 'COUNT', step)
local expiry = fmt('%d', now_ms() + DEFAULT_KEY_WINDOW)
local fields = scan[2]
for i = 1, #fields, 2 do
  if not call('ZSCORE', idem_expiry, fields[i]) then
    call('ZADD', idem_expiry, expiry, fields[i])
  end
end
if scan[1] == '0' then return {1, '0'} end
return {0, scan[1]}
