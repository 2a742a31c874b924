-- Deletes ended calls' records and takes them out of their campaign's counters, in one step per batch.
-- KEYS[1] campaign counters, KEYS[2..] records. ARGV[1] cutoff (epoch ms; '' = every ended call), ARGV[2..] the call
-- ids of KEYS[2..], in the same order.
-- A record is purged when it is terminal and ended (endedAt, else updatedAt) before the cutoff. Calls in flight are
-- never touched: their jobs may still dial, and would recreate a record from the job.
-- Returns { purged call ids, call ids with no record (expired or purged before), count of calls in flight }.
local cutoff = tonumber(ARGV[1])
local purged, gone, inFlight = {}, {}, 0
local function decrement(field)
  if tonumber(redis.call('HGET', KEYS[1], field) or '0') > 0 then redis.call('HINCRBY', KEYS[1], field, -1) end
end
for i = 2, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'state', 'outcome', 'endedAt', 'updatedAt', 'dialed')
  local state = f[1]
  if not state then
    gone[#gone + 1] = ARGV[i]
  elseif state ~= 'terminal' then
    inFlight = inFlight + 1
  else
    local ended = tonumber(f[3]) or tonumber(f[4]) or 0
    if not cutoff or ended < cutoff then
      redis.call('DEL', KEYS[i])
      decrement('total')
      decrement('terminal')
      if f[2] then decrement('outcome:' .. f[2]) end
      -- a call that ended undialed leaves the pick-up rate's count of them. A record from before `dialed` was kept
      -- counts as undialed when it ended canceled, expired or skipped: that is how applyTerminal.lua seeded the count.
      local oldUndialed = f[5] == false and (f[2] == 'canceled' or f[2] == 'expired' or f[2] == 'skipped')
      if f[5] == '0' or oldUndialed then decrement('undialed') end
      purged[#purged + 1] = ARGV[i]
    end
  end
end
return { purged, gone, inFlight }
