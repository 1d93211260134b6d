-- Link a federated identity to a user unless it is linked already; returns the owner's user id.
-- KEYS[1] identities hash, KEYS[2] the user's identity set; ARGV[1] the identity (JSON [issuer, subject]), ARGV[2] user id
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if owner then
  return owner
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return ARGV[2]
