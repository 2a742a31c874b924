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
-- The keys live in different hash slots unless QUEUE_PREFIX carries a hash tag, which Redis Cluster needs anyway. A call
-- in another call shard than QUEUE_PREFIX's own (callShards.ts) is claimed in two steps instead: reserveDialStart.lua in
-- QUEUE_PREFIX's slot, then markDialSent.lua in the shard's (the checks are the same, includes/dialStart.lua).
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
--- @include "dialStart"
local refused = dialLockRefusal(KEYS[2], ARGV[2]) or dialBackoffRefusal(KEYS[3]) or dialRecordRefusal(KEYS[1], ARGV[1])
  or takeDialStart(KEYS[4], KEYS[5], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10])
if refused then return refused end
markSent(KEYS[1], ARGV[1], ARGV[3])
return { 'ok', 0 }
