-- Sliding-window log: at most ARGV[1] dial starts in any rolling window of ARGV[2] ms, across every process.
-- Time comes from Redis so all consumers share one clock. KEYS[1] sorted set of start times.
-- ARGV[3] unique member. Returns {1, now} when a slot was taken, {0, wait_ms} when the window is full.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window * 2)
  return { 1, now }
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return { 0, tonumber(oldest[2]) + window - now + 1 }
