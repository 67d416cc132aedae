-- Stores churn scores, each only if its event is not older than the stored score's.
-- ARGV: 5 per score: customer_id, churn_score, model_version, scored_at, event_ts.
-- Returns how many were written.
local written = 0
for b = 1, #ARGV, 5 do
  local key = 'profile:' .. ARGV[b]
  local newest = tonumber(redis.call('HGET', key, 'scored_event_ts') or '0')
  if tonumber(ARGV[b + 4]) >= newest then
    redis.call('HSET', key, 'churn_score', ARGV[b + 1], 'model_version', ARGV[b + 2],
               'scored_at', ARGV[b + 3], 'scored_event_ts', ARGV[b + 4])
    written = written + 1
  end
end
return written
