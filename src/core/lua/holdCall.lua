-- Records why the consumer holds a call back (heldCalls.ts), writing only when the reason changes.
-- KEYS[1] the campaign's held-calls hash (call id -> "<reason>|<since ms>")
-- ARGV[1] call id, ARGV[2] reason, ARGV[3] now (epoch ms), ARGV[4] the hash's time to live (ms)
-- Returns 1 when written (a new or different reason), 0 when the call was already held for this reason.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local bar = string.find(current, '|', 1, true)
  if bar and string.sub(current, 1, bar - 1) == ARGV[2] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
