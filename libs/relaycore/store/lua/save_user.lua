-- Overwrite an existing user's record (never re-create a deleted one).
-- KEYS: user hash.  ARGV: 1 '1' to drop the email field, then field/value pairs
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if ARGV[1] == '1' then redis.call('HDEL', KEYS[1], 'email') end
return 1
