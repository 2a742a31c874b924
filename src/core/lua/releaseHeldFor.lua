-- Clears every call of a campaign recorded as held for one reason (heldCalls.ts), in one step: a call whose reason
-- changed meanwhile (a consumer recorded another gate) keeps its record.
-- KEYS[1] the campaign's held-calls hash (call id -> "<reason>|<since ms>"), ARGV[1] the reason.
-- Returns how many calls were cleared.
local entries = redis.call('HGETALL', KEYS[1])
local prefix = ARGV[1] .. '|'
local cleared = 0
for i = 1, #entries, 2 do
  if string.sub(entries[i + 1], 1, #prefix) == prefix then
    redis.call('HDEL', KEYS[1], entries[i])
    cleared = cleared + 1
  end
end
return cleared
