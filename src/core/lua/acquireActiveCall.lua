-- Takes (or renews) the lease of one call in progress, under the global cap on calls in progress and, when a
-- campaign cap is given, the campaign's own. A lease is a member of a sorted set scored by its expiry (epoch ms of
-- Redis' own clock, so every host agrees); expired members are dropped first, so a crashed holder's lease frees itself.
-- KEYS[1] every lease (the global set), KEYS[2] the campaign's leases.
-- ARGV[1] member (campaign:call), ARGV[2] global limit (0 = none: counted only), ARGV[3] campaign limit (0 = none),
-- ARGV[4] lease time to live (ms).
-- A member already holding a lease renews it whatever the counts (a re-run of its job, an attempt taken over):
-- a call never waits for a lease it holds.
-- Returns {1, active} when held, {0, active, 'global'|'campaign', ms until the earliest lease expires} when full.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], expiry, ARGV[1])
  redis.call('ZADD', KEYS[2], expiry, ARGV[1])
  return { 1, redis.call('ZCARD', KEYS[1]) }
end
local function earliest(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(0, tonumber(first[2]) - now)
end
local active = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[2])
if limit > 0 and active >= limit then return { 0, active, 'global', earliest(KEYS[1]) } end
local campaignLimit = tonumber(ARGV[3])
if campaignLimit > 0 and redis.call('ZCARD', KEYS[2]) >= campaignLimit then
  return { 0, active, 'campaign', earliest(KEYS[2]) }
end
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
return { 1, active + 1 }
