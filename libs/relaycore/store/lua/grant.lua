-- KEYS: meta, grants, granted-set of the user.  ARGV: 1 name, 2 user_id, 3 '1' grant / '0' revoke, 4 channel
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local changed
if ARGV[3] == '1' then
  changed = redis.call('SADD', KEYS[2], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[1])
else
  changed = redis.call('SREM', KEYS[2], ARGV[2])
  redis.call('SREM', KEYS[3], ARGV[1])
end
if changed == 1 then redis.call('PUBLISH', ARGV[4], 'topic:' .. ARGV[1]) end
return changed
