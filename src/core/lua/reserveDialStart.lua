-- The first step of claiming a dial start for a call in another call shard than QUEUE_PREFIX's own (callShards.ts),
-- run in QUEUE_PREFIX's slot: no platform back-off runs, the call is not past its end, and the rolling DIAL_CPS window
-- (and the campaign's own, with a KEYS[3]) has room: then the start is counted there. markDialSent.lua, in the shard's
-- slot, follows; when it refuses, the caller takes the start back out of the window (DialRateLimiter.giveBack), and a
-- start counted for a claim that never completes (the process died in between) only holds a slot that went unused:
-- the window may count a start that never went out, never miss one that did.
-- KEYS[1] the platform back-off key, KEYS[2] the dial-start log, KEYS[3] (optional) the campaign's dial-start log.
-- ARGV[1] limit, ARGV[2] window µs, ARGV[3] unique member, ARGV[4] keep µs, ARGV[5] the campaign's limit, ARGV[6] the
-- campaign's window µs ('' for both without KEYS[3]), ARGV[7] the moment past which the call is not started ('' = none).
-- Returns {status, n} as claimDial.lua does: {'ok', 0}, {'backoff', ms}, {'window_full', µs}, {'campaign_full', µs},
-- {'past_end', 0}.
--- @include "dialStart"
local refused = dialBackoffRefusal(KEYS[1]) or takeDialStart(KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
if refused then return refused end
return { 'ok', 0 }
