-- Closes attempt `attempt`'s entry in the attempt log of the record at `recordKey`: sets its `endedAt` to `now` (ms)
-- and copies in the fields of `resultJson` (result, kind, reason, SIP status). Writes nothing itself.
-- Returns the log, encoded for the caller's HSET, and the decoded result.
local function closeAttemptLog(recordKey, attempt, now, resultJson)
  local log = cjson.decode(redis.call('HGET', recordKey, 'attemptLog') or '[]')
  local result = cjson.decode(resultJson)
  for i = #log, 1, -1 do
    if log[i].attempt == tonumber(attempt) then
      log[i].endedAt = tonumber(now)
      for k, v in pairs(result) do log[i][k] = v end
      break
    end
  end
  return cjson.encode(log), result
end
