-- Approve or deny a device-flow grant (relaycore/store/valkey_device.py), only while it is
-- pending and unexpired.  KEYS[1] the grant hash.  ARGV: user_id, new status, now_ms.
-- Returns the grant's fields after the change, or nil when nothing changed.
local f = redis.call('HMGET', KEYS[1], 'status', 'expires_ms')
if f[1] ~= 'pending' or tonumber(ARGV[3]) >= tonumber(f[2]) then return nil end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'user_id', ARGV[1])
return redis.call('HGETALL', KEYS[1])
