-- Change an existing topic's fields and tell every process.
-- KEYS: meta.  ARGV: 1 name, 2 invalidate channel, then field/value pairs
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
redis.call('PUBLISH', ARGV[2], 'topic:' .. ARGV[1])
return 1
