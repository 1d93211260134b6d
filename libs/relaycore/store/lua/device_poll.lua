-- A device-flow poll (relaycore/store/valkey_device.py): record it, enforce the interval, and hand
-- an approved grant out exactly once.
-- KEYS[1] the grant hash.  ARGV: now_ms, slack_ms.
-- Returns {outcome, field, value, ...} with the grant's fields, or {outcome} when it is gone.
local f = redis.call('HMGET', KEYS[1], 'status', 'expires_ms', 'interval', 'last_poll_ms')
if not f[1] then return {'unknown'} end
local now = tonumber(ARGV[1])
local outcome = f[1]
if outcome ~= 'used' then
  if now >= tonumber(f[2]) then
    outcome = 'expired'
  else
    local interval = tonumber(f[3])
    local last = tonumber(f[4])
    if last > 0 and now - last < interval * 1000 - tonumber(ARGV[2]) then
      redis.call('HSET', KEYS[1], 'interval', interval + 5, 'last_poll_ms', now)
      outcome = 'slow_down'
    else
      redis.call('HSET', KEYS[1], 'last_poll_ms', now)
      if outcome == 'approved' then
        redis.call('HSET', KEYS[1], 'status', 'used')
      end
    end
  end
end
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, outcome)
return reply
