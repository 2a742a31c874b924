-- Takes call ids whose record is gone (purged, or expired by its retention TTL) out of a campaign's call-id list.
-- KEYS[1] campaign call-id list, KEYS[2..] the records of the candidate ids. ARGV[1..] the candidate ids, in the order
-- of KEYS[2..]. A candidate whose record exists again (recreated since) stays; ids not named are never touched.
-- Returns the list's length afterwards.
local drop = {}
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then drop[ARGV[i - 1]] = true end
end
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local keep = {}
for _, id in ipairs(ids) do
  if not drop[id] then keep[#keep + 1] = id end
end
if #keep == #ids then return #ids end
redis.call('DEL', KEYS[1])
-- RPUSH in chunks: Lua's unpack has a stack limit
local CHUNK = 1000
for i = 1, #keep, CHUNK do
  redis.call('RPUSH', KEYS[1], unpack(keep, i, math.min(i + CHUNK - 1, #keep)))
end
return #keep
