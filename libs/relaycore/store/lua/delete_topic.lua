-- Delete a topic with everything that hangs off it, atomically (all keys share one slot).
-- KEYS: meta, stream, grants, index.  ARGV: 1 name, 2 partition key prefix, 3 invalidate channel
local owner = redis.call('HGET', KEYS[1], 'owner_id')
if not owner then return 0 end
local grantees = redis.call('SMEMBERS', KEYS[3])
for _, uid in ipairs(grantees) do
  redis.call('SREM', ARGV[2] .. ':granted:' .. uid, ARGV[1])
end
redis.call('SREM', ARGV[2] .. ':owned:' .. owner, ARGV[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('PUBLISH', ARGV[3], 'topic:' .. ARGV[1])
return 1
