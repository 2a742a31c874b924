-- Closes the current attempt's log entry and moves the call to `in_call` or `waiting_retry`, unless terminal.
-- KEYS[1] record. ARGV[1] attempt, ARGV[2] next state, ARGV[3] now, ARGV[4] attempt result JSON
-- ({result, sipStatusCode?, sipStatus?}).
-- The "dial sent" mark is never touched here: only the holder that set it may take it back (releaseDial.lua), when it
-- knows its request never went out.
-- Returns 1 when applied, 0 when the call had ended (or has no record).
--- @include "closeAttemptLog"
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'terminal' then return 0 end
local log, result = closeAttemptLog(KEYS[1], ARGV[1], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'updatedAt', ARGV[3], 'attemptLog', log)
-- the record's SIP status is the latest attempt's: an answered retry clears a previous busy
if result.sipStatusCode then
  redis.call('HSET', KEYS[1], 'sipStatusCode', result.sipStatusCode, 'sipStatus', result.sipStatus or '')
else
  redis.call('HDEL', KEYS[1], 'sipStatusCode', 'sipStatus')
end
return 1
