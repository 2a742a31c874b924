-- The second step of claiming a dial start for a call in another call shard (after reserveDialStart.lua), run in the
-- shard's slot: this process still holds the dial job's lock, and the call is dialing this very attempt, not marked
-- sent before. Then the attempt is marked sent.
-- KEYS[1] call record, KEYS[2] the job's lock key. ARGV[1] attempt, ARGV[2] lock token, ARGV[3] now (ms, for the record).
-- Returns {'ok', 0}, {'lost_lock', 0}, {'not_dialing', 0} or {'already_sent', 0}.
--- @include "dialStart"
local refused = dialLockRefusal(KEYS[2], ARGV[2]) or dialRecordRefusal(KEYS[1], ARGV[1])
if refused then return refused end
markSent(KEYS[1], ARGV[1], ARGV[3])
return { 'ok', 0 }
