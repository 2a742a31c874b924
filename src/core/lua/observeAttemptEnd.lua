-- Notes how the agent saw dial attempt n end before it was answered (the SIP participant left the room), so a
-- consumer that takes over a dead colleague's attempt can learn its result instead of guessing.
-- KEYS[1] record. ARGV[1] attempt, ARGV[2] observation JSON ({attempt, disconnectReason, lastCallStatus?, at}).
-- Returns 1 when stored; 0 when the record is missing, terminal, or already on another attempt (a late observation
-- of an old attempt must not speak for the current one).
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'terminal' then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'attemptObserved', ARGV[2])
return 1
