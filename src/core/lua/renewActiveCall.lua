-- Extends a lease still held (never re-creates one that expired or was released: a released call is over, and an
-- expired one's capacity may have been given to another call meanwhile).
-- KEYS[1] every lease, KEYS[2] the campaign's leases. ARGV[1] member, ARGV[2] new time to live (ms).
-- Returns 1 when renewed, 0 when the lease is gone.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then return 0 end
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[1])
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
return 1
