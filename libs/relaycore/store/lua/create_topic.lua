-- KEYS: meta, owned, index.  ARGV: name, topic_id, owner_id, is_public, description, created_at, channel
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'topic_id', ARGV[2], 'topic_name', ARGV[1], 'owner_id', ARGV[3],
  'is_public', ARGV[4], 'description', ARGV[5], 'created_at', ARGV[6])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PUBLISH', ARGV[7], 'topic:' .. ARGV[1])
return 1
