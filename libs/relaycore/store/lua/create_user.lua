-- KEYS: names index, user hash.  ARGV: username, user_id, then field/value pairs
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
return 1
