-- Deletes a BullMQ job's keys and its deduplication key and adds the `removed` event, as BullMQ 6's removeJobWithChildren
-- does once the job is out of its state (node_modules/bullmq/dist/esm/commands/includes/removeJobWithChildren.lua,
-- removeJobKeys.lua, removeDeduplicationKeyIfNeededOnRemoval.lua, getOrSetMaxEvents.lua).
-- `prefix` is the queue's key prefix (`<prefix>:<queue>:`), `prev` the state it was taken out of.
local function removeBullmqJob(prefix, eventsKey, metaKey, id, prev)
  local jobKey = prefix .. id
  local deid = redis.call('HGET', jobKey, 'deid')
  if deid then
    local dedupKey = prefix .. 'de:' .. deid
    if redis.call('GET', dedupKey) == id then
      redis.call('DEL', dedupKey)
      redis.call('DEL', prefix .. 'dn:' .. deid)
    end
  end
  if redis.call('DEL', jobKey, jobKey .. ':logs', jobKey .. ':dependencies', jobKey .. ':processed', jobKey .. ':failed',
      jobKey .. ':unsuccessful') > 0 then
    local maxEvents = redis.call('HGET', metaKey, 'opts.maxLenEvents')
    if not maxEvents then
      maxEvents = 10000
      redis.call('HSET', metaKey, 'opts.maxLenEvents', maxEvents)
    end
    redis.call('XADD', eventsKey, 'MAXLEN', '~', maxEvents, '*', 'event', 'removed', 'jobId', id, 'prev', prev)
  end
end
