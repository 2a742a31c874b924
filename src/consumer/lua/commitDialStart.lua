-- Sliding-window log: records a dial start now only if fewer than ARGV[1] starts fall in the last ARGV[2] µs.
-- The pacing slot (reserveDialSlot) spreads starts evenly; this check holds the hard limit at the moment a
-- call really starts, even when a process stalled (GC, load) and several late slots fire together.
-- Callers may use different windows (each adds its own recent stalls to the margin), so entries are kept for the
-- widest window any caller can use (ARGV[4] µs) and each caller counts only its own window.
-- KEYS[1] sorted set of start times (µs). ARGV[3] unique member. Returns {1, 0} when recorded, {0, wait_us} otherwise.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local keep = math.max(tonumber(ARGV[4]), window)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - keep))
local from = string.format('(%d', now - window)
if redis.call('ZCOUNT', KEYS[1], from, '+inf') < limit then
  redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(keep / 1000) * 2)
  return { 1, 0 }
end
local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
return { 0, string.format('%d', tonumber(oldest[2]) + window - now + 1) }
