-- Remove a federated identity's link if it points at the given user; 1 if removed, else 0.
-- KEYS[1] identities hash, KEYS[2] the user's identity set; ARGV[1] the identity (JSON [issuer, subject]), ARGV[2] user id
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
