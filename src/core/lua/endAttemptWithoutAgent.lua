-- Ends an answered attempt whose agent never joined: the consumer's decision, taken before it hangs up (deletes the
-- room), so it cannot be undone by an agent that joins in the meantime. Atomically, and only when
--   * this process still holds the dial job's BullMQ lock (KEYS[2] = ARGV[2]: another consumer may own it by now), and
--   * the call is `dialing` this very attempt (not ended, not connected: an agent outcome or the in_call mark won),
-- it closes the attempt's log entry with ARGV[4] (its result, kind, reason), adds the attempt to the record's
-- `noAgentAttempts` (",1,2,": applyTerminal.lua then refuses an agent outcome for it), and moves the call to ARGV[5]
-- (`waiting_retry` for a retry, or stays `dialing` when the consumer ends the call next).
-- KEYS[1] record, KEYS[2] the job's lock key. ARGV[1] attempt, ARGV[2] lock token, ARGV[3] now (ms),
-- ARGV[4] attempt result JSON, ARGV[5] next state.
-- Returns 'ok', 'lost_lock', or the state that kept it from applying ('missing', 'terminal', 'in_call', …, or
-- 'other_attempt' when the record is on another attempt).
--- @include "closeAttemptLog"
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 'lost_lock' end
local record = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'noAgentAttempts')
if not record[1] then return 'missing' end
if record[1] ~= 'dialing' then return record[1] end
if tonumber(record[2]) ~= tonumber(ARGV[1]) then return 'other_attempt' end
local log = closeAttemptLog(KEYS[1], ARGV[1], ARGV[3], ARGV[4])
local listed = record[3] or ','
redis.call('HSET', KEYS[1], 'state', ARGV[5], 'updatedAt', ARGV[3], 'attemptLog', log,
  'noAgentAttempts', listed .. ARGV[1] .. ',')
redis.call('HDEL', KEYS[1], 'sipStatusCode', 'sipStatus')
return 'ok'
