-- Every atomic change of Stoker's Redis state, dispatched on ARGV[1].
-- Keys arrive in KEYS (see worker/keys.py); due retries name their queue key in
-- the scheduled member ("<queue key>\n<payload>"), so Stoker needs a non-cluster Redis.

local cmd = ARGV[1]

local function job_id(payload)
  local ok, obj = pcall(cjson.decode, payload)
  if ok and type(obj) == 'table' then
    local id = obj['id']
    if type(id) == 'string' and id ~= '' then return id end
    if type(id) == 'number' then return tostring(id) end
  end
  return nil
end

local function promote(scheduled, now, limit)
  local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, limit)
  for _, member in ipairs(due) do
    local sep = string.find(member, '\n', 1, true)
    if sep then
      redis.call('LPUSH', string.sub(member, 1, sep - 1), string.sub(member, sep + 1))
    end
    redis.call('ZREM', scheduled, member)
  end
  return #due
end

-- Claim a job just moved to an in-flight list: mark it running unless another
-- worker already runs the same id; count the delivery unless it is only prefetched
-- (a prefetched job is counted when it starts, so a worker's death never charges it).
local function claim(running, deliveries, payload, worker, count)
  local id = job_id(payload)
  if not id then return {'', 0} end
  if redis.call('HSETNX', running, id, worker) == 0 then
    local holder = redis.call('HGET', running, id)
    -- A prefetch never claims the id of the job this worker is running right now.
    if holder ~= worker or not count then return {holder, 0} end
  end
  if count then return {'', redis.call('HINCRBY', deliveries, id, 1)} end
  return {'', tonumber(redis.call('HGET', deliveries, id) or '0')}
end

local function forget(running, deliveries, id)
  if id and id ~= '' then
    redis.call('HDEL', running, id)
    redis.call('HDEL', deliveries, id)
  end
end

if cmd == 'fetch' then
  -- KEYS: running, deliveries, scheduled, then (queue, inflight) pairs
  -- ARGV: now, worker, promote_limit, prefetch (1: do not count the delivery yet),
  --       id of a prefetched job that has just started (its delivery is counted now)
  local running, deliveries, scheduled = KEYS[1], KEYS[2], KEYS[3]
  if ARGV[6] ~= '' then redis.call('HINCRBY', deliveries, ARGV[6], 1) end
  promote(scheduled, ARGV[2], tonumber(ARGV[4]))
  for i = 4, #KEYS, 2 do
    local payload = redis.call('RPOP', KEYS[i])
    if payload then
      redis.call('LPUSH', KEYS[i + 1], payload)
      local c = claim(running, deliveries, payload, ARGV[3], ARGV[5] ~= '1')
      return {payload, (i - 2) / 2, c[1], c[2]}
    end
  end
  local nxt = redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
  return {false, 0, '', 0, nxt[2] or ''}

elseif cmd == 'claim' then
  -- KEYS: running, deliveries   ARGV: worker, payload
  return claim(KEYS[1], KEYS[2], ARGV[3], ARGV[2], true)

elseif cmd == 'rewrite' then
  -- Give an id-less payload its id. KEYS: inflight, running, deliveries
  -- ARGV: old payload, new payload, worker
  redis.call('LREM', KEYS[1], 1, ARGV[2])
  redis.call('LPUSH', KEYS[1], ARGV[3])
  return claim(KEYS[2], KEYS[3], ARGV[3], ARGV[4], true)

elseif cmd == 'release' then
  -- Hand a prefetched, never started job back: to the front of its queue, its
  -- delivery uncounted. KEYS: inflight, running, queue
  -- ARGV: payload, the worker whose claim it holds ('' for a duplicate: none)
  local n = redis.call('LREM', KEYS[1], 1, ARGV[2])
  if n == 1 then redis.call('RPUSH', KEYS[3], ARGV[2]) end
  local id = job_id(ARGV[2])
  if id and ARGV[3] ~= '' and redis.call('HGET', KEYS[2], id) == ARGV[3] then
    redis.call('HDEL', KEYS[2], id)
  end
  return n

elseif cmd == 'ack' then
  -- Jobs whose outcome is recorded leave flight. KEYS: running, deliveries, inflight...
  -- ARGV: then (index of the job's inflight key in KEYS, payload, id) triples
  local n = 0
  for i = 2, #ARGV, 3 do
    -- From the tail: the oldest entries of the list are the ones acknowledged.
    n = n + redis.call('LREM', KEYS[tonumber(ARGV[i])], -1, ARGV[i + 1])
    forget(KEYS[1], KEYS[2], ARGV[i + 2])
  end
  return n

elseif cmd == 'drop' then
  -- A duplicate of a job another worker runs. KEYS: inflight  ARGV: payload
  return redis.call('LREM', KEYS[1], 1, ARGV[2])

elseif cmd == 'schedule' then
  -- Retry later or defer a run_at job. KEYS: inflight, running, deliveries, scheduled
  -- ARGV: payload, id, due, member
  -- Only a job still in flight moves: a repeated call (after a lost reply) is a no-op.
  local n = redis.call('LREM', KEYS[1], 1, ARGV[2])
  if n == 1 then redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5]) end
  forget(KEYS[2], KEYS[3], ARGV[3])
  return n

elseif cmd == 'fail' then
  -- KEYS: inflight, running, deliveries, failed   ARGV: payload, id, failed entry
  local n = redis.call('LREM', KEYS[1], 1, ARGV[2])
  if n == 1 then redis.call('LPUSH', KEYS[4], ARGV[4]) end
  forget(KEYS[2], KEYS[3], ARGV[3])
  return n

elseif cmd == 'requeue_front' then
  -- Put a job back at the front of its queue, no attempt charged.
  -- KEYS: inflight, running, deliveries, queue   ARGV: payload, id, new payload
  local n = redis.call('LREM', KEYS[1], 1, ARGV[2])
  if n == 1 then redis.call('RPUSH', KEYS[4], ARGV[4]) end
  forget(KEYS[2], KEYS[3], ARGV[3])
  return n

elseif cmd == 'requeue_failed' then
  -- KEYS: failed, queue   ARGV: failed entry, payload
  if redis.call('LREM', KEYS[1], 1, ARGV[2]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[3])
    return 1
  end
  return 0

elseif cmd == 'recover' then
  -- Return a dead worker's in-flight jobs to the front of their queues; a job that
  -- has now been delivered max_deliveries times without an outcome is a poison pill.
  -- KEYS: running, deliveries, failed, heartbeat, worker hash, workers set,
  --       then (inflight, queue) pairs
  -- ARGV: worker, max_deliveries, failed_at (ISO 8601)
  if redis.call('EXISTS', KEYS[4]) == 1 then return {{}, {}} end
  local recovered, poisoned = {}, {}
  for i = 7, #KEYS, 2 do
    while true do
      local payload = redis.call('RPOP', KEYS[i])
      if not payload then break end
      local id = job_id(payload)
      local count = id and tonumber(redis.call('HGET', KEYS[2], id) or '0') or 0
      if id and count >= tonumber(ARGV[3]) then
        local entry = '{"id":' .. cjson.encode(id) .. ',"job":' .. payload
          .. ',"queue_key":' .. cjson.encode(KEYS[i + 1])
          .. ',"error":{"type":"PoisonPill","message":' .. cjson.encode(
            'delivered ' .. count .. ' times; each delivery took down its worker')
          .. ',"traceback":null},"attempts":null,"deliveries":' .. count
          .. ',"worker_id":' .. cjson.encode(ARGV[2])
          .. ',"failed_at":' .. cjson.encode(ARGV[4]) .. '}'
        redis.call('LPUSH', KEYS[3], entry)
        forget(KEYS[1], KEYS[2], id)
        table.insert(poisoned, id)
      else
        redis.call('RPUSH', KEYS[i + 1], payload)
        if id then
          redis.call('HDEL', KEYS[1], id)
          table.insert(recovered, id)
        end
      end
    end
  end
  redis.call('DEL', KEYS[5])
  redis.call('SREM', KEYS[6], ARGV[2])
  return {recovered, poisoned}
end

return redis.error_reply('unknown command ' .. tostring(cmd))
