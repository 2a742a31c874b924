-- Notes an operator's cancel on a call that could not be canceled at once (its dial may have gone out): the consumer
-- ends it `canceled` instead of trying it again when its attempt ends unanswered.
-- KEYS[1] call record. ARGV[1] now (epoch ms).
-- Returns 1 when noted, 0 when there is no record or the call has ended.
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'terminal' then return 0 end
redis.call('HSET', KEYS[1], 'cancelRequestedAt', ARGV[1])
return 1
