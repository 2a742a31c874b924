-- Records that dial attempt n starts in a room, unless the call already ended.
-- KEYS[1] record, KEYS[2] campaign counters, KEYS[3] campaign call-id list. ARGV[1] attempt, ARGV[2] room, ARGV[3] now (ms), ARGV[4] record JSON for a missing record
-- (a job written by another service straight onto the queue has no record yet), ARGV[5] '1' when the dial is sent at once
-- (the agent dialing a call itself: no CPS claim comes between, and an operator's cancel must see it as ringing).
-- Returns the state before the change: 'terminal' means do not dial.
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'terminal' then return 'terminal' end
if not state then
  local fields = cjson.decode(ARGV[4])
  for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
  redis.call('RPUSH', KEYS[3], fields.callId)
  redis.call('HINCRBY', KEYS[2], 'total', 1)
  state = 'missing'
end
local log = cjson.decode(redis.call('HGET', KEYS[1], 'attemptLog') or '[]')
log[#log + 1] = { attempt = tonumber(ARGV[1]), room = ARGV[2], startedAt = tonumber(ARGV[3]) }
redis.call('HSET', KEYS[1], 'state', 'dialing', 'attempts', ARGV[1], 'room', ARGV[2],
  'attemptStartedAt', ARGV[3], 'updatedAt', ARGV[3], 'attemptLog', cjson.encode(log))
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'dialSentAttempt', ARGV[1], 'dialSentAt', ARGV[3])
end
return state
