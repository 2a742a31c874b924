-- Removes a campaign's counters and lists once it has no call left on record (its call-id list is empty).
-- KEYS[1] campaign call-id list, KEYS[2] counters, KEYS[3] paused-held job ids.
-- ARGV[1] '1': only when the counters count no call either (no tally of calls whose records expired is lost).
-- Returns 1 when removed, 0 when calls remain (in flight, added meanwhile, or counted).
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
if ARGV[1] == '1' and tonumber(redis.call('HGET', KEYS[2], 'total') or '0') > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
