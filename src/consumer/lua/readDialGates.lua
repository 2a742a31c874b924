-- What a dial job's gates read, in one round trip instead of five (gateReads.ts): the campaign's document, whether
-- the number is on the do-not-call list, whether the campaign is paused, how long the platform back-off still runs,
-- and (when the call's record shares the slot) whether an operator asked to cancel the call. Reads only.
-- KEYS[1] campaign document, KEYS[2] do-not-call set, KEYS[3] paused campaigns, KEYS[4] platform back-off,
-- KEYS[5] the call's record (optional).
-- ARGV[1] phone number (E.164), ARGV[2] campaign id.
-- Returns {document or nil, on the do-not-call list 1|0, paused 1|0, back-off PTTL, cancel requested 1|0|-1 (not read)}.
local cancel = -1
if KEYS[5] then cancel = redis.call('HEXISTS', KEYS[5], 'cancelRequestedAt') end
return {
  redis.call('GET', KEYS[1]),
  redis.call('SISMEMBER', KEYS[2], ARGV[1]),
  redis.call('SISMEMBER', KEYS[3], ARGV[2]),
  redis.call('PTTL', KEYS[4]),
  cancel,
}
