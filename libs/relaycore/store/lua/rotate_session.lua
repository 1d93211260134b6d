-- Rotate a refresh-token session's secret: exactly one caller presenting the current hash wins.
-- KEYS: 1 session hash, 2 its list of replaced hashes (newest first).
-- ARGV: 1 presented hash, 2 new hash, 3 now (ms), 4 idle lifetime (ms), 5 grace (ms), 6 hashes kept
-- Returns {outcome, user_id}: ok | raced | replayed | expired | unknown (see SessionStore.rotate).
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown', ''} end
local f = redis.call('HMGET', KEYS[1], 'secret', 'expires_at', 'user_id', 'rotated_at')
local now = tonumber(ARGV[3])
local expires = tonumber(f[2])
if now >= expires then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {'expired', f[3]}
end
if f[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'secret', ARGV[2], 'last_used_at', ARGV[3], 'rotated_at', ARGV[3])
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
  local ttl = math.min(tonumber(ARGV[4]), expires - now)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  return {'ok', f[3]}
end
local position = redis.call('LPOS', KEYS[2], ARGV[1])
if not position then return {'unknown', ''} end
if position == 0 and f[4] and now - tonumber(f[4]) < tonumber(ARGV[5]) then
  return {'raced', f[3]}
end
redis.call('DEL', KEYS[1], KEYS[2])
return {'replayed', f[3]}
