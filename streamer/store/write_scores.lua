-- Stores churn scores, each only if it was computed from a profile state (`event_seq`,
-- carried as `scored_seq`) at least as new as the stored score's; missing counts as 0.
-- Event times do not guard: a late event still makes a newer profile state.
-- ARGV: 6 per score: customer_id, churn_score, model_version, scored_at, event_ts, seq.
-- Returns how many were written.
local written = 0
for b = 1, #ARGV, 6 do
  local key = 'profile:' .. ARGV[b]
  local newest = tonumber(redis.call('HGET', key, 'scored_seq') or '0') or 0
  if tonumber(ARGV[b + 5]) >= newest then
    redis.call('HSET', key, 'churn_score', ARGV[b + 1], 'model_version', ARGV[b + 2],
               'scored_at', ARGV[b + 3], 'scored_event_ts', ARGV[b + 4],
               'scored_seq', ARGV[b + 5])
    written = written + 1
  end
end
return written
