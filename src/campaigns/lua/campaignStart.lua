-- Counts one call start of a campaign against its own rate (its cps, or the point of its ramp), a sliding-window log
-- kept apart from the global DIAL_CPS window (claimDial.lua): fewer than ARGV[1] starts in the last ARGV[2] ms.
-- KEYS[1] the campaign's start log. ARGV[1] limit, ARGV[2] window ms, ARGV[3] unique member.
-- Returns 0 when the start was counted, else the ms until the window has room.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now + 1)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window * 2)
return 0
