-- Record an acknowledged id only if it is newer than the stored one.  KEYS: ack hash.
-- ARGV: topic, ms, seq, id, ttl_ms
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local dash = string.find(cur, '-', 1, true)
  local cms, cseq = tonumber(string.sub(cur, 1, dash - 1)), tonumber(string.sub(cur, dash + 1))
  local ms, seq = tonumber(ARGV[2]), tonumber(ARGV[3])
  if ms < cms or (ms == cms and seq <= cseq) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
