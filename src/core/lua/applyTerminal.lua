-- Applies a call's terminal outcome once, and only from a state it can come from (the record's state machine).
-- KEYS[1] record, KEYS[2] campaign counters, KEYS[3] campaign call-id list.
-- ARGV[1] outcome, ARGV[2] now, ARGV[3] flat JSON object of fields to store, ARGV[4] record JSON for a missing record,
-- ARGV[5] comma-separated states the call may be in ('' = any; 'missing' = no record yet, created from ARGV[4]),
-- ARGV[6] comma-separated states allowed only when ARGV[7] (the result's attempt) is the record's latest attempt.
-- ARGV[8] seconds to keep the record once terminal (0 = for ever): its TTL is set in the same step that ends the call.
-- ARGV[9] comma-separated states allowed only while the record's latest attempt is not marked sent (claimDial has not
-- let its CreateSIPParticipant go): an operator may cancel a call a consumer is about to dial, never one that may ring.
-- ARGV[10] '1' when the outcome itself says the call connected (answered, voicemail, transferred).
-- ARGV[11] '1' when the result may not end an attempt the consumer hung up for want of an agent (the record's
-- `noAgentAttempts`, written by endAttemptWithoutAgent.lua before the room was deleted): the result's attempt (ARGV[7],
-- else the record's latest) listed there is refused, whatever the state, with 'no_agent:<state>' (also on a terminal
-- record, where any other result is a repeat).
-- The record keeps whether the call was dialed at least once (`dialed` '1'/'0': a connected outcome, a dial marked
-- sent, or an attempt that ended with a result from the far end, not only LiveKit errors or a drain), and the counters
-- count the ended calls that were not (`undialed`: the pick-up rate leaves them out). Counters from before `undialed`
-- was kept get it at their first end since, seeded from their canceled + expired + skipped counts (the report's
-- fallback rule for such counters), so the figure carries on instead of counting the old undialed ends as dialed.
-- Returns 1 when applied, 0 when the call was already terminal, otherwise the state it found ('missing' when there
-- is no record): the result is refused and nothing is written.
local keep = tonumber(ARGV[8]) or 0
local state = redis.call('HGET', KEYS[1], 'state')
local function listed(list, value)
  return list ~= '' and string.find(',' .. list .. ',', ',' .. value .. ',', 1, true) ~= nil
end
local function hungUpWithoutAgent()
  if ARGV[11] ~= '1' or not state then return false end
  local attempt = ARGV[7] ~= '' and ARGV[7] or redis.call('HGET', KEYS[1], 'attempts') or '0'
  return listed(redis.call('HGET', KEYS[1], 'noAgentAttempts') or '', tostring(tonumber(attempt)))
end
if state == 'terminal' then
  -- ended by a write that knew no retention (an operator's cancel, the consumer's no-agent end): this later pass sets
  -- it, never extends it
  if keep > 0 then redis.call('EXPIRE', KEYS[1], keep, 'NX') end
  -- said apart from a repeat: this report may have kept the consumer's own report of the call off call-results
  if hungUpWithoutAgent() then return 'no_agent:terminal' end
  return 0
end
local found = state or 'missing'
if hungUpWithoutAgent() then return 'no_agent:' .. found end
local allowed = ARGV[5] == '' or listed(ARGV[5], found)
if not allowed and state and ARGV[7] ~= '' and listed(ARGV[6], state) then
  allowed = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') == tonumber(ARGV[7])
end
if not allowed and state and listed(ARGV[9] or '', state) then
  local attempt = redis.call('HMGET', KEYS[1], 'attempts', 'dialSentAttempt')
  allowed = tonumber(attempt[2]) ~= tonumber(attempt[1] or '0')
end
if not allowed then return found end
if not state then
  local fields = cjson.decode(ARGV[4])
  for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
  redis.call('RPUSH', KEYS[3], fields.callId)
  redis.call('HINCRBY', KEYS[2], 'total', 1)
end
local function wasDialed()
  if ARGV[10] == '1' or redis.call('HEXISTS', KEYS[1], 'dialSentAttempt') == 1 then return true end
  for _, entry in ipairs(cjson.decode(redis.call('HGET', KEYS[1], 'attemptLog') or '[]')) do
    local r = entry.result
    if r ~= nil and r ~= 'not_started' and r ~= 'platform_error' then return true end
  end
  return false
end
local dialed = wasDialed()
local fields = cjson.decode(ARGV[3])
for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HSET', KEYS[1], 'state', 'terminal', 'outcome', ARGV[1], 'updatedAt', ARGV[2], 'dialed', dialed and '1' or '0')
if redis.call('HEXISTS', KEYS[2], 'undialed') == 0 then
  local seed = 0
  for _, never in ipairs({ 'canceled', 'expired', 'skipped' }) do
    seed = seed + (tonumber(redis.call('HGET', KEYS[2], 'outcome:' .. never)) or 0)
  end
  redis.call('HSET', KEYS[2], 'undialed', seed)
end
redis.call('HINCRBY', KEYS[2], 'terminal', 1)
redis.call('HINCRBY', KEYS[2], 'undialed', dialed and 0 or 1)
redis.call('HINCRBY', KEYS[2], 'outcome:' .. ARGV[1], 1)
if keep > 0 then redis.call('EXPIRE', KEYS[1], keep) end
return 1
