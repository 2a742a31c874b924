-- Second step of removing many BullMQ jobs of one queue (removeQueuedJobs.ts): one window of the queue's wait or
-- paused list. KEYS[1] the list, KEYS[2] the set of ids to remove (from removeJobsFromSets.lua), KEYS[3] events
-- stream, KEYS[4] meta hash. ARGV[1] the queue's key prefix, ARGV[2] the window's first index, ARGV[3] its length,
-- ARGV[4] the state named in the `removed` event (`wait` or `paused`).
-- Entries of the window that are in KEYS[2] and not locked are taken out of the list (marked, then one LREM: O(list)
-- in C, instead of one per job) and out of KEYS[2], and their jobs removed as BullMQ does.
-- Returns { count removed, the next window's first index, the list's length, how many ids are still in KEYS[2] }.
--- @include "removeBullmqJob"
local prefix, start, size = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local entries = redis.call('LRANGE', KEYS[1], start, start + size - 1)
local removed = 0
if #entries > 0 and redis.call('SCARD', KEYS[2]) > 0 then
  local member = redis.call('SMISMEMBER', KEYS[2], unpack(entries))
  -- a value no job id has (BullMQ ids never hold a NUL byte)
  local MARK = '\0removing'
  for i, id in ipairs(entries) do
    if member[i] == 1 and redis.call('EXISTS', prefix .. id .. ':lock') == 0 then
      redis.call('LSET', KEYS[1], start + i - 1, MARK)
      redis.call('SREM', KEYS[2], id)
      removeBullmqJob(prefix, KEYS[3], KEYS[4], id, ARGV[4])
      removed = removed + 1
    end
  end
  if removed > 0 then redis.call('LREM', KEYS[1], 0, MARK) end
end
return { removed, start + #entries - removed, redis.call('LLEN', KEYS[1]), redis.call('SCARD', KEYS[2]) }
