-- Starts (or keeps) the dial queue's platform back-off after a LiveKit/network failure, shared by every consumer.
-- Failures that arrive while a back-off runs came from requests sent before it started: they keep the back-off but do
-- not lengthen it, so the delay doubles per probe after each back-off, not per call that was already in flight.
-- KEYS[1] consecutive-failure counter, KEYS[2] back-off key (exists while the back-off runs, PX = what remains).
-- ARGV[1] base ms, ARGV[2] cap ms, ARGV[3] how long the counter outlives the last failure (ms).
-- Returns {consecutive failures, back-off remaining ms}.
local remaining = redis.call('PTTL', KEYS[2])
if remaining > 0 then
  return { tonumber(redis.call('GET', KEYS[1]) or '1'), remaining }
end
local failures = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local ms = math.min(tonumber(ARGV[1]) * 2 ^ (failures - 1), tonumber(ARGV[2]))
redis.call('SET', KEYS[2], failures, 'PX', math.floor(ms))
return { failures, math.floor(ms) }
