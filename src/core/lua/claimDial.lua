-- Claims the start of dial attempt ARGV[1] of a call: the last step before its CreateSIPParticipant. Atomically:
--   * this process still holds the dial job's BullMQ lock (a holder whose lock lapsed must not dial: another consumer
--     may own the job by now);
--   * no platform back-off is running (LiveKit was failing: nothing is sent, from any slot of any process);
--   * the call is dialing this very attempt and nobody marked it sent before;
--   * the rolling window of dial starts has room (DIAL_CPS, a sliding-window log shared by every consumer: fewer than
--     ARGV[4] starts in the last ARGV[5] µs, at Redis' time). The pacing slot (reserveDialSlot) spreads starts
--     evenly; this check holds the hard limit at the moment a call really starts: the caller sends right after the
--     reply, or not at all when the reply took longer than its bound (CLAIM_TO_SEND_MAX_MS in dialRateLimiter.ts).
-- Then it records the start in the window and marks the attempt sent. A start taken back afterwards (releaseDial)
-- keeps its window entry: the window may count a start that never went out, never miss one that did.
-- Processes configured with different windows (a rolling upgrade, different DIAL_CPS) may share the log, so entries
-- are kept for the widest window a caller names (ARGV[7] µs, at least its own) and each caller counts its own window.
-- The keys live in different hash slots unless QUEUE_PREFIX carries a hash tag, which Redis Cluster needs anyway.
-- With a KEYS[5], the call's campaign has its own rate (its cps, or its ramp): the same check and count on the
-- campaign's own dial-start log, so a campaign's rate also holds at the moment its calls really start, whatever the
-- global pacing did to the order of its calls (its gate, campaignRate.ts, only paces them towards this point).
-- KEYS[1] call record, KEYS[2] the job's lock key, KEYS[3] the platform back-off key, KEYS[4] the dial-start log,
-- KEYS[5] (optional) the campaign's dial-start log.
-- A call whose campaign ends, or which itself expires, is not started past that moment (ARGV[10], epoch ms at Redis'
-- time; '' = no end): a call that passed its gates before the end may wait seconds for its CPS slot.
-- ARGV[1] attempt, ARGV[2] lock token, ARGV[3] now (ms, for the record), ARGV[4] limit, ARGV[5] window µs,
-- ARGV[6] unique member, ARGV[7] keep µs, ARGV[8] the campaign's limit, ARGV[9] the campaign's window µs ('' for
-- both without KEYS[5]), ARGV[10] the moment past which the call is not started ('' = none).
-- Returns {status, n}: {'ok', 0}, {'lost_lock', 0}, {'backoff', remaining ms}, {'not_dialing', 0},
-- {'already_sent', 0}, {'window_full', µs until the window has room}, {'campaign_full', µs until the campaign's
-- window has room}, {'past_end', 0}.
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return { 'lost_lock', 0 } end
local backoff = redis.call('PTTL', KEYS[3])
if backoff > 0 then return { 'backoff', backoff } end
local record = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'dialSentAttempt')
if record[1] ~= 'dialing' or tonumber(record[2]) ~= tonumber(ARGV[1]) then return { 'not_dialing', 0 } end
if tonumber(record[3]) == tonumber(ARGV[1]) then return { 'already_sent', 0 } end

local limit = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local keep = math.max(tonumber(ARGV[7]), window)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local notAfter = tonumber(ARGV[10] or '')
if notAfter and now > notAfter * 1000 then return { 'past_end', 0 } end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', string.format('%d', now - keep))
local from = string.format('(%d', now - window)
if redis.call('ZCOUNT', KEYS[4], from, '+inf') >= limit then
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[4], from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return { 'window_full', string.format('%d', tonumber(oldest[2]) + window - now + 1) }
end
local campaignLog = KEYS[5]
local campaignWindow = 0
if campaignLog then
  campaignWindow = tonumber(ARGV[9])
  redis.call('ZREMRANGEBYSCORE', campaignLog, '-inf', string.format('%d', now - campaignWindow))
  local campaignFrom = string.format('(%d', now - campaignWindow)
  if redis.call('ZCOUNT', campaignLog, campaignFrom, '+inf') >= tonumber(ARGV[8]) then
    local oldest = redis.call('ZRANGEBYSCORE', campaignLog, campaignFrom, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    return { 'campaign_full', string.format('%d', tonumber(oldest[2]) + campaignWindow - now + 1) }
  end
end
redis.call('ZADD', KEYS[4], string.format('%d', now), ARGV[6])
redis.call('PEXPIRE', KEYS[4], math.ceil(keep / 1000) * 2)
if campaignLog then
  redis.call('ZADD', campaignLog, string.format('%d', now), ARGV[6])
  redis.call('PEXPIRE', campaignLog, math.ceil(campaignWindow / 1000) * 2)
end
redis.call('HSET', KEYS[1], 'dialSentAttempt', ARGV[1], 'dialSentAt', ARGV[3], 'updatedAt', ARGV[3])
return { 'ok', 0 }
