-- Marks dial attempt ARGV[1] of a call as sent (its CreateSIPParticipant may go out now), atomically with every check
-- that keeps a phone from ringing twice for one attempt:
--   * this process still holds the dial job's BullMQ lock (a holder whose lock lapsed must not dial: another consumer
--     may own the job by now);
--   * no platform back-off is running (LiveKit was failing: nothing is sent, from any slot of any process);
--   * the call is dialing this very attempt and nobody marked it sent before.
-- KEYS[1] call record, KEYS[2] the job's lock key, KEYS[3] the platform back-off key.
-- ARGV[1] attempt, ARGV[2] lock token, ARGV[3] now (ms).
-- Returns {status, ms}: {'ok', 0}, {'lost_lock', 0}, {'backoff', remaining ms}, {'not_dialing', 0}, {'already_sent', 0}.
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return { 'lost_lock', 0 } end
local backoff = redis.call('PTTL', KEYS[3])
if backoff > 0 then return { 'backoff', backoff } end
local record = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'dialSentAttempt')
if record[1] ~= 'dialing' or tonumber(record[2]) ~= tonumber(ARGV[1]) then return { 'not_dialing', 0 } end
if tonumber(record[3]) == tonumber(ARGV[1]) then return { 'already_sent', 0 } end
redis.call('HSET', KEYS[1], 'dialSentAttempt', ARGV[1], 'dialSentAt', ARGV[3], 'updatedAt', ARGV[3])
return { 'ok', 0 }
