-- Counts first-seen events in their profiles, one call per micro-batch.
-- ARGV: ttl, then 6 per event: event_id, customer_id, counter field, cancel flag, ts, source.
-- Returns, per event, the profile after the event (flat HGETALL) or 0 for a duplicate.
-- Every counted event also bumps the profile's update sequence `event_seq`, which scores
-- carry as `scored_seq`, so a score is kept only if it read the newest applied state.
-- The dedup mark holds the source position (topic/partition/offset) of the message that
-- counted the event: the same message seen again (redelivered after a crash, or a retry
-- after a lost reply) is not counted again but is answered like a first sighting, so it is
-- forwarded downstream once more instead of being lost between the count and the forward.
local ttl = tonumber(ARGV[1])
local out = {}
for b = 2, #ARGV, 6 do
  local key = 'profile:' .. ARGV[b + 1]
  local mark = ARGV[b + 5]
  if mark == '' then mark = ARGV[b + 1] end
  if redis.call('SET', 'dedup:' .. ARGV[b], mark, 'NX', 'EX', ttl) then
    redis.call('HINCRBY', key, ARGV[b + 2], 1)
    redis.call('HINCRBY', key, 'event_seq', 1)
    if ARGV[b + 3] == '1' then redis.call('HINCRBY', key, 'cancel_page_views', 1) end
    local ts = tonumber(ARGV[b + 4])
    local last = tonumber(redis.call('HGET', key, 'last_event_ts') or '0')
    if ts > last then redis.call('HSET', key, 'last_event_ts', ARGV[b + 4]) end
    out[#out + 1] = redis.call('HGETALL', key)
  elseif ARGV[b + 5] ~= '' and redis.call('GET', 'dedup:' .. ARGV[b]) == ARGV[b + 5] then
    out[#out + 1] = redis.call('HGETALL', key)
  else
    out[#out + 1] = 0
  end
end
return out
