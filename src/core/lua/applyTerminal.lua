-- Applies a call's terminal outcome once: a second report for the same call changes nothing.
-- KEYS[1] record, KEYS[2] campaign counters, KEYS[3] campaign call-id list.
-- ARGV[1] outcome, ARGV[2] now, ARGV[3] flat JSON object of fields to store, ARGV[4] record JSON for a missing record,
-- ARGV[5] optional comma-separated states the call must be in (an operator's cancel must not end a ringing call).
-- Returns 1 when applied, 0 when the call was already terminal (or not in one of the required states).
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'terminal' then return 0 end
if ARGV[5] and ARGV[5] ~= '' and not string.find(',' .. ARGV[5] .. ',', ',' .. (state or 'missing') .. ',', 1, true) then
  return 0
end
if not state then
  local fields = cjson.decode(ARGV[4])
  for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
  redis.call('RPUSH', KEYS[3], fields.callId)
  redis.call('HINCRBY', KEYS[2], 'total', 1)
end
local fields = cjson.decode(ARGV[3])
for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HSET', KEYS[1], 'state', 'terminal', 'outcome', ARGV[1], 'updatedAt', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'terminal', 1)
redis.call('HINCRBY', KEYS[2], 'outcome:' .. ARGV[1], 1)
return 1
