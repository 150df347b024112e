-- Uses prelude.lua
-- Give claimed jobs that never started back to waiting, as if never claimed.
--
-- KEYS[1] prefix "lk:{Q}:" (job hashes are prefix .. 'job:' .. id, claims prefix .. 'claim:'
--         .. id: see prelude.lua)
-- KEYS[2] active  KEYS[3] waiting  KEYS[4] cancelled  KEYS[5] idem  KEYS[6] idem_expiry
-- KEYS[7] wake
-- ARGV[1] n, then 2 per job: id, token
-- Returns how many jobs went back to waiting.
--
--   token == GET claim:<id> -> DEL claim:<id>, ZREM active, waiting at its original place
--   the claim is this token, cancelled -> the claim ends: the job was never started
--   LPUSH wake 1; LTRIM wake 0 0 when any went back
--
-- Why: a worker told to stop (drain, RSS limit, fenced) may hold claimed jobs it has not
-- started. Releasing them now lets another worker run them at once instead of after the
-- lease expires. The job hash needs no change: a claim never wrote it, so it still says
-- waiting with the attempts of before the claim, and the attempt is not counted because
-- the handler never ran.
local prefix, active, waiting, cancelled, idem, idem_expiry, wake = unpack(KEYS)
local n = tonumber(ARGV[1])
local q = {now = now_ms(), jobs = prefix .. 'job:', cancelled = cancelled, idem = idem,
           idem_expiry = idem_expiry}

local keys = {}
for i = 1, n do keys[i] = prefix .. 'claim:' .. ARGV[i * 2] end
local current = mget(keys)

local ids, scored, spent, count, back = {}, {}, {}, 0, 0
for i = 1, n do
  local id, token = ARGV[i * 2], ARGV[i * 2 + 1]
  if not spent[id] and current[i] and
     (current[i] == token or current[i] == token .. CANCELLED) then
    spent[id] = true
    count = count + 1
    ids[count] = id
    keys[count] = keys[i]
    if current[i] == token then
      back = back + 1
      scored[back * 2 - 1] = call('HGET', q.jobs .. id, 'priority') or '0'
      scored[back * 2] = waiting_member(id)
    else
      end_cancelled_claim(q, id)
    end
  end
end
bulk_keys('DEL', keys, count)
bulk('ZREM', active, ids, count)
bulk('ZADD', waiting, scored, back * 2)
if back > 0 then
  call('LPUSH', wake, 1)
  call('LTRIM', wake, 0, 0)
end
return back
