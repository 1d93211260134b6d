-- Atomic publish: idempotency check, write-access check, topic auto-creation, and the appends to
-- each topic stream and its partition's fan-out log, all in one step.  The fan-out log generates
-- the id ('*'); the topic stream gets the same id, so a message has one id everywhere.
--
-- KEYS: [idem]? then per distinct topic: meta, stream, log, owned, index
-- ARGV[1]: one MessagePack array (a single argument keeps the client's per-argument cost flat):
--   1 has_idem, 2 user_id, 3 is_admin, 4 username, 5 created_at, 6 idem_ttl_ms, 7 maxlen,
--   8 minid ('0' = none), 9 log_maxlen, 10 invalidate channel, 11 result context,
--   12 topics {{name, new topic id}...}, 13 messages {{topic index (1-based), payload, timestamp,
--   metadata ('' = none), expires_at_ms ('' = none)}...}, 14 (optional) true when the caller
--   follows with WAIT: a repeat then rewrites its record unchanged, so that the WAIT (which counts
--   the connection's last write) covers the first request's writes too
-- Returns {'ok', id...} | {'dup', stored} | {'denied', name...}
local h = cmsgpack.unpack(ARGV[1])
local has_idem = h[1]
local k = 0
if has_idem then
  k = 1
  local prev = redis.call('GET', KEYS[1])
  if prev then
    if h[14] then redis.call('SET', KEYS[1], prev, 'KEEPTTL') end
    return {'dup', prev}
  end
end
local uid, is_admin, topics, msgs = h[2], h[3], h[12], h[13]
local ntopics = #topics
local names, tids, create, denied = {}, {}, {}, {}
for i = 1, ntopics do
  names[i], tids[i] = topics[i][1], topics[i][2]
  local owner = redis.call('HGET', KEYS[k + (i - 1) * 5 + 1], 'owner_id')
  if not owner then
    create[i] = true
  elseif owner ~= uid and not is_admin then
    denied[#denied + 1] = names[i]
  end
end
if #denied > 0 then
  table.insert(denied, 1, 'denied')
  return denied
end
for i = 1, ntopics do
  if create[i] then
    local b = k + (i - 1) * 5
    redis.call('HSET', KEYS[b + 1], 'topic_id', tids[i], 'topic_name', names[i], 'owner_id', uid,
      'is_public', '0', 'description', 'Auto-created topic by ' .. h[4], 'created_at', h[5])
    redis.call('SADD', KEYS[b + 4], names[i])
    redis.call('SADD', KEYS[b + 5], names[i])
    redis.call('PUBLISH', h[10], 'topic:' .. names[i])
  end
end
-- The next id after a stream's last generated one ('<ms>-<seq>' -> '<ms>-<seq+1>').
local function after_top(stream)
  local info = redis.call('XINFO', 'STREAM', stream)
  for n = 1, #info, 2 do
    if info[n] == 'last-generated-id' then
      local ms, seq = string.match(info[n + 1], '^(%d+)-(%d+)$')
      return ms .. '-' .. string.format('%d', tonumber(seq) + 1)
    end
  end
end
local ids = {}
for j = 1, #msgs do
  local m = msgs[j]
  local ti = m[1]
  local fields = {'p', m[2], 'ts', m[3]}
  if m[4] ~= '' then fields[#fields + 1] = 'm'; fields[#fields + 1] = m[4] end
  if m[5] ~= '' then fields[#fields + 1] = 'x'; fields[#fields + 1] = m[5] end
  local b = k + (ti - 1) * 5
  local stream, log = KEYS[b + 2], KEYS[b + 3]
  local id = redis.call('XADD', log, 'MAXLEN', '~', h[9], '*', 't', names[ti], unpack(fields))
  local res = redis.pcall('XADD', stream, 'MAXLEN', '~', h[7], id, unpack(fields))
  if type(res) == 'table' and res.err then
    -- The topic stream is ahead of its log (the log was reset or restored from an older copy):
    -- move this message past the stream's top in both, so the topic stays publishable.
    redis.call('XDEL', log, id)
    id = after_top(stream)
    redis.call('XADD', log, 'MAXLEN', '~', h[9], id, 't', names[ti], unpack(fields))
    redis.call('XADD', stream, 'MAXLEN', '~', h[7], id, unpack(fields))
  end
  ids[j] = id
end
if h[8] ~= '0' then
  for i = 1, ntopics do
    redis.call('XTRIM', KEYS[k + (i - 1) * 5 + 2], 'MINID', '~', h[8])
  end
end
if has_idem then
  redis.call('SET', KEYS[1], h[11] .. '|' .. table.concat(ids, ','), 'PX', h[6])
end
table.insert(ids, 1, 'ok')
return ids
