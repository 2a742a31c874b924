-- Creates call records in state `queued`, once per call id.
-- KEYS[1] campaign counters hash, KEYS[2] campaign call-id list, KEYS[3..] one record key per call.
-- ARGV[1] now (ms), ARGV[2] campaign id, then per call: call id, phone number, metadata JSON, idempotency key ('' for
-- none; kept on the record it creates, never written on one that exists).
-- Returns one status per call: 1 created, 0 exists and still queued (its job may be re-added safely), -1 exists past queued.
local now = ARGV[1]
local campaign = ARGV[2]
local created = 0
local statuses = {}
local createdIds = {}
for i = 3, #KEYS do
  local base = 3 + (i - 3) * 4
  local callId, phone, metadata, key = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local state = redis.call('HGET', KEYS[i], 'state')
  if not state then
    if key == '' then
      redis.call('HSET', KEYS[i], 'callId', callId, 'campaignId', campaign, 'phoneNumber', phone,
        'metadata', metadata, 'state', 'queued', 'attempts', 0, 'createdAt', now, 'updatedAt', now)
    else
      redis.call('HSET', KEYS[i], 'callId', callId, 'campaignId', campaign, 'phoneNumber', phone,
        'metadata', metadata, 'state', 'queued', 'attempts', 0, 'createdAt', now, 'updatedAt', now, 'idempotencyKey', key)
    end
    created = created + 1
    createdIds[created] = callId
    statuses[#statuses + 1] = 1
  elseif state == 'queued' then
    statuses[#statuses + 1] = 0
  else
    statuses[#statuses + 1] = -1
  end
end
-- appended in order, a bounded number per RPUSH (unpack's stack limit)
local PUSH_BATCH = 1000
for first = 1, created, PUSH_BATCH do
  redis.call('RPUSH', KEYS[2], unpack(createdIds, first, math.min(first + PUSH_BATCH - 1, created)))
end
if created > 0 then
  redis.call('HINCRBY', KEYS[1], 'total', created)
end
return statuses
