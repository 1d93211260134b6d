-- An admitted attempt is over (see Throttle.release).
-- KEYS: failures 1, in flight 1, failures 2, in flight 2, ...  ARGV: 1 '1' if it failed, 2 window (ms)
for i = 1, #KEYS / 2 do
  local flying = KEYS[2 * i]
  if tonumber(redis.call('GET', flying) or '0') > 0 then redis.call('DECR', flying) end
  if ARGV[1] == '1' then
    redis.call('INCR', KEYS[2 * i - 1])
    redis.call('PEXPIRE', KEYS[2 * i - 1], ARGV[2], 'NX')
  end
end
return 1
