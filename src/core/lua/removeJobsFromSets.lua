-- First step of removing many BullMQ jobs of one queue (removeQueuedJobs.ts), per id as BullMQ 6's removeJob-2.lua
-- (node_modules/bullmq/dist/esm/commands/removeJob-2.lua, includes/removeJobFromAnyState.lua) but without its LREM,
-- which scans the whole wait list for every job.
-- KEYS[1] the set of ids left for the list step, KEYS[2] events stream, KEYS[3] meta hash.
-- ARGV[1] the queue's key prefix (`<prefix>:<queue>:`), ARGV[2] seconds KEYS[1] lives at most, ARGV[3..] job ids.
-- A locked job (being processed) is kept and not counted; a job with no hash is not there and not counted (removeJob
-- would answer 1 for it: a purge's figure then counted every queue for every call); one in a sorted set (completed, waiting-children, delayed, failed, prioritized) is taken out and
-- removed. A scheduler's job and one with a parent or children are left to BullMQ (answered). The others are added to
-- KEYS[1]: they are in wait, paused or active, for removeJobsFromList.lua.
-- Returns { count removed, ids left to BullMQ }.
--- @include "removeBullmqJob"
local prefix = ARGV[1]
local removed, leftToBullmq = 0, {}
local SETS = { 'completed', 'waiting-children', 'delayed', 'failed', 'prioritized' }
for i = 3, #ARGV do
  local id = ARGV[i]
  local jobKey = prefix .. id
  if redis.call('EXISTS', jobKey .. ':lock') == 0 then
    if redis.call('EXISTS', jobKey) == 1 then
      local f = redis.call('HMGET', jobKey, 'rjk', 'parentKey')
      if (f[1] and f[1] ~= '') or (f[2] and f[2] ~= '') or redis.call('EXISTS', jobKey .. ':dependencies') == 1 then
        leftToBullmq[#leftToBullmq + 1] = id
      else
        local prev = nil
        for _, set in ipairs(SETS) do
          if redis.call('ZREM', prefix .. set, id) == 1 then
            prev = set
            break
          end
        end
        if prev then
          removeBullmqJob(prefix, KEYS[2], KEYS[3], id, prev)
          removed = removed + 1
        else
          redis.call('SADD', KEYS[1], id)
        end
      end
    end
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return { removed, leftToBullmq }
