-- GCRA without burst: hands out dial-start times at least ARGV[1] µs apart, across every consumer process.
-- Each caller gets its own future slot (no thundering herd of waiting workers) and sleeps until it.
-- Time comes from Redis so all consumers share one clock. KEYS[1] holds the next free slot (µs since epoch).
-- Returns {slot_us, wait_us}.
local interval = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nextFree = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(nextFree, now)
local following = slot + interval
redis.call('SET', KEYS[1], string.format('%d', following), 'PX', math.ceil((following - now) / 1000) + 1000)
return { string.format('%d', slot), string.format('%d', slot - now) }
