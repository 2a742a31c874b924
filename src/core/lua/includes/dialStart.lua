-- The checks of a dial start, shared by claimDial.lua (one script, when the call's record lives in QUEUE_PREFIX's own
-- slot) and by reserveDialStart.lua + markDialSent.lua (two scripts, one per slot, for a call in another call shard;
-- see src/core/callShards.ts). Each returns nil when the check passes, else the claim's answer {status, n}.

-- This process still holds the dial job's BullMQ lock: a holder whose lock lapsed must not dial (another consumer may
-- own the job by now).
local function dialLockRefusal(lockKey, token)
  if redis.call('GET', lockKey) ~= token then return { 'lost_lock', 0 } end
  return nil
end

-- No platform back-off runs (LiveKit was failing: nothing is sent, from any slot of any process).
local function dialBackoffRefusal(backoffKey)
  local backoff = redis.call('PTTL', backoffKey)
  if backoff > 0 then return { 'backoff', backoff } end
  return nil
end

-- The call is dialing this very attempt and nobody marked it sent before.
local function dialRecordRefusal(recordKey, attempt)
  local record = redis.call('HMGET', recordKey, 'state', 'attempts', 'dialSentAttempt')
  if record[1] ~= 'dialing' or tonumber(record[2]) ~= tonumber(attempt) then return { 'not_dialing', 0 } end
  if tonumber(record[3]) == tonumber(attempt) then return { 'already_sent', 0 } end
  return nil
end

-- Counts the start in the rolling window of dial starts (DIAL_CPS, a sliding-window log shared by every consumer:
-- fewer than `limit` starts in the last `windowUs` µs, at Redis' time), and in the campaign's own log when it has one,
-- unless the call is past `notAfterMs` (epoch ms; '' = no end) or a window is full. Entries are kept for the widest
-- window a caller names (`keepUs`, at least its own): processes configured with different windows (a rolling upgrade)
-- may share the log, and each caller counts its own window.
local function takeDialStart(logKey, campaignLog, limitArg, windowArg, member, keepArg, campaignLimitArg, campaignWindowArg, notAfterArg)
  local limit = tonumber(limitArg)
  local window = tonumber(windowArg)
  local keep = math.max(tonumber(keepArg), window)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local notAfter = tonumber(notAfterArg or '')
  if notAfter and now > notAfter * 1000 then return { 'past_end', 0 } end
  redis.call('ZREMRANGEBYSCORE', logKey, '-inf', string.format('%d', now - keep))
  local from = string.format('(%d', now - window)
  if redis.call('ZCOUNT', logKey, from, '+inf') >= limit then
    local oldest = redis.call('ZRANGEBYSCORE', logKey, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    return { 'window_full', string.format('%d', tonumber(oldest[2]) + window - now + 1) }
  end
  local campaignWindow = 0
  if campaignLog then
    campaignWindow = tonumber(campaignWindowArg)
    redis.call('ZREMRANGEBYSCORE', campaignLog, '-inf', string.format('%d', now - campaignWindow))
    local campaignFrom = string.format('(%d', now - campaignWindow)
    if redis.call('ZCOUNT', campaignLog, campaignFrom, '+inf') >= tonumber(campaignLimitArg) then
      local oldest = redis.call('ZRANGEBYSCORE', campaignLog, campaignFrom, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      return { 'campaign_full', string.format('%d', tonumber(oldest[2]) + campaignWindow - now + 1) }
    end
  end
  redis.call('ZADD', logKey, string.format('%d', now), member)
  redis.call('PEXPIRE', logKey, math.ceil(keep / 1000) * 2)
  if campaignLog then
    redis.call('ZADD', campaignLog, string.format('%d', now), member)
    redis.call('PEXPIRE', campaignLog, math.ceil(campaignWindow / 1000) * 2)
  end
  return nil
end

-- Marks attempt `attempt` sent (at `now`, epoch ms).
local function markSent(recordKey, attempt, now)
  redis.call('HSET', recordKey, 'dialSentAttempt', attempt, 'dialSentAt', now, 'updatedAt', now)
end
