-- Takes back the "dial sent" mark of attempt ARGV[1] when this process knows the CreateSIPParticipant never went out
-- (the agent dispatch before it failed), so a later takeover may dial this attempt instead of counting it as rung.
-- KEYS[1] call record, KEYS[2] the job's lock key. ARGV[1] attempt, ARGV[2] lock token.
-- Returns 1 when released, 0 otherwise (another holder, or another attempt).
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'dialSentAttempt')) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HDEL', KEYS[1], 'dialSentAttempt', 'dialSentAt')
return 1
