-- Admit one attempt on several throttle keys at once (see Throttle.admit).
-- KEYS: failures 1, in flight 1, failures 2, in flight 2, ...  ARGV: limit 1, limit 2, ..., hold (ms)
-- Returns {'go', 0} | {'wait', 0} | {'refuse', ms until the refusing key's window resets}
local n = #KEYS / 2
local wait = false
for i = 1, n do
  local failed = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local flying = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local limit = tonumber(ARGV[i])
  if failed >= limit then return {'refuse', redis.call('PTTL', KEYS[2 * i - 1])} end
  if failed + flying >= limit then wait = true end
end
if wait then return {'wait', 0} end
for i = 1, n do
  redis.call('INCR', KEYS[2 * i])
  redis.call('PEXPIRE', KEYS[2 * i], ARGV[n + 1])
end
return {'go', 0}
