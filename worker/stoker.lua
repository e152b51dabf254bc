-- Every atomic change of Stoker's Redis state, dispatched on ARGV[1].
-- Keys arrive in KEYS (see worker/keys.py); due retries name their queue key in
-- the scheduled member ("<queue key>\n<payload>"), so Stoker needs a non-cluster Redis.

local cmd = ARGV[1]

-- One definition of a job id, mirrored by `worker.protocol.job_id_of`: the payload is at
-- most `max_bytes` long (never decoded otherwise), nested at most 64 levels (as
-- protocol.MAX_DEPTH), a JSON object, and its "id" is a string
-- of 1 to 128 bytes of valid UTF-8 without control characters. Anything else has no id:
-- no mark is ever set for it.
local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = string.byte(s, i)
    if c < 0x80 then
      i = i + 1
    else
      local len, min
      if c >= 0xC2 and c <= 0xDF then len, min = 2, 0x80
      elseif c >= 0xE0 and c <= 0xEF then len, min = 3, 0x800
      elseif c >= 0xF0 and c <= 0xF4 then len, min = 4, 0x10000
      else return false end
      if i + len - 1 > n then return false end
      local cp = c % (2 ^ (7 - len))
      for j = i + 1, i + len - 1 do
        local b = string.byte(s, j)
        if b < 0x80 or b > 0xBF then return false end
        cp = cp * 64 + (b - 0x80)
      end
      if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return false end
      i = i + len
    end
  end
  return true
end

local function job_id(payload, max_bytes)
  if max_bytes and #payload > max_bytes then return nil end
  -- protocol.MAX_DEPTH: a deeper payload carries no id (fakeredis lacks the setting)
  if cjson.decode_max_depth then cjson.decode_max_depth(64) end
  local ok, obj = pcall(cjson.decode, payload)
  if ok and type(obj) == 'table' then
    local id = obj['id']
    if type(id) == 'string' and #id >= 1 and #id <= 128 and not string.find(id, '%c')
        and (not string.find(id, '[\128-\255]') or valid_utf8(id)) then
      return id
    end
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
local function claim(running, deliveries, payload, worker, count, max_bytes)
  local id = job_id(payload, max_bytes)
  if not id then return {'', 0} end
  if redis.call('HSETNX', running, id, worker) == 0 then
    local holder = redis.call('HGET', running, id)
    -- A prefetch never claims the id of the job this worker is running right now.
    if holder ~= worker or not count then return {holder, 0} end
  end
  if count then return {'', redis.call('HINCRBY', deliveries, id, 1)} end
  return {'', tonumber(redis.call('HGET', deliveries, id) or '0')}
end

-- A job leaves flight: its running mark, delivery count and any cancel request go.
local function forget(running, deliveries, cancel, id)
  if id and id ~= '' then
    redis.call('HDEL', running, id)
    redis.call('HDEL', deliveries, id)
    redis.call('SREM', cancel, id)
  end
end

-- A job asked to stop while it ran is not put back anywhere: its outcome is cancelled.
local function cancel_requested(cancel, id)
  return id and id ~= '' and redis.call('SISMEMBER', cancel, id) == 1
end

-- A job leaves flight to go on somewhere (`place` puts it there), unless its
-- cancellation was asked meanwhile: then it goes nowhere. Only a job still in flight
-- moves, so a repeated call (after a lost reply) is a no-op.
-- Returns 1 when moved, 0 when no longer in flight, 2 when cancelled meanwhile.
local function move_on(inflight, running, deliveries, cancel, payload, id, place)
  local n = redis.call('LREM', inflight, 1, payload)
  local result = n
  if cancel_requested(cancel, id) then
    result = 2
  elseif n == 1 then
    place()
  end
  forget(running, deliveries, cancel, id)
  return result
end

if cmd == 'fetch' then
  -- KEYS: running, deliveries, scheduled, then (queue, inflight) pairs
  -- ARGV: now, worker, promote_limit, prefetch (1: do not count the delivery yet),
  --       id of a prefetched job that has just started (its delivery is counted now),
  --       max payload bytes (a longer payload is never decoded here)
  local running, deliveries, scheduled = KEYS[1], KEYS[2], KEYS[3]
  if ARGV[6] ~= '' then redis.call('HINCRBY', deliveries, ARGV[6], 1) end
  promote(scheduled, ARGV[2], tonumber(ARGV[4]))
  for i = 4, #KEYS, 2 do
    local payload = redis.call('RPOP', KEYS[i])
    if payload then
      redis.call('LPUSH', KEYS[i + 1], payload)
      local c = claim(running, deliveries, payload, ARGV[3], ARGV[5] ~= '1', tonumber(ARGV[7]))
      return {payload, (i - 2) / 2, c[1], c[2]}
    end
  end
  local nxt = redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
  return {false, 0, '', 0, nxt[2] or ''}

elseif cmd == 'claim' then
  -- KEYS: running, deliveries   ARGV: worker, payload, max payload bytes
  return claim(KEYS[1], KEYS[2], ARGV[3], ARGV[2], true, tonumber(ARGV[4]))

elseif cmd == 'id' then
  -- The job id Stoker sees in a payload ('' for none). ARGV: payload, max payload bytes
  return job_id(ARGV[2], tonumber(ARGV[3])) or ''

elseif cmd == 'rewrite' then
  -- Give an id-less payload its id. KEYS: inflight, running, deliveries
  -- ARGV: old payload, new payload, worker, max payload bytes
  redis.call('LREM', KEYS[1], 1, ARGV[2])
  redis.call('LPUSH', KEYS[1], ARGV[3])
  return claim(KEYS[2], KEYS[3], ARGV[3], ARGV[4], true, tonumber(ARGV[5]))

elseif cmd == 'release' then
  -- Hand a prefetched, never started job back: to the front of its queue, its
  -- delivery uncounted. KEYS: inflight, running, queue
  -- ARGV: payload, the worker whose claim it holds ('' for a duplicate: none),
  --       max payload bytes
  local n = redis.call('LREM', KEYS[1], 1, ARGV[2])
  if n == 1 then redis.call('RPUSH', KEYS[3], ARGV[2]) end
  local id = job_id(ARGV[2], tonumber(ARGV[4]))
  if id and ARGV[3] ~= '' and redis.call('HGET', KEYS[2], id) == ARGV[3] then
    redis.call('HDEL', KEYS[2], id)
  end
  return n

elseif cmd == 'ack' then
  -- Jobs whose outcome is recorded leave flight. KEYS: running, deliveries, cancel,
  -- inflight...   ARGV: then (index of the job's inflight key in KEYS, payload, id) triples
  local n = 0
  for i = 2, #ARGV, 3 do
    -- From the tail: the oldest entries of the list are the ones acknowledged.
    n = n + redis.call('LREM', KEYS[tonumber(ARGV[i])], -1, ARGV[i + 1])
    forget(KEYS[1], KEYS[2], KEYS[3], ARGV[i + 2])
  end
  return n

elseif cmd == 'drop' then
  -- A duplicate of a job another worker runs. KEYS: inflight  ARGV: payload
  return redis.call('LREM', KEYS[1], 1, ARGV[2])

elseif cmd == 'schedule' then
  -- Retry later or defer a run_at job. KEYS: inflight, running, deliveries, scheduled,
  -- cancel   ARGV: payload, id, due, member
  -- Returns 1 when scheduled, 0 when no longer in flight, 2 when cancelled meanwhile.
  return move_on(KEYS[1], KEYS[2], KEYS[3], KEYS[5], ARGV[2], ARGV[3], function()
    redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
  end)

elseif cmd == 'fail' then
  -- KEYS: inflight, running, deliveries, failed, cancel
  -- ARGV: payload, id, failed entry, max failed-list length (0: no cap), max payload bytes
  -- The id this script reads from the payload is forgotten too: a payload the worker
  -- rejected may still carry an id that `claim` marked.
  local n = redis.call('LREM', KEYS[1], 1, ARGV[2])
  if n == 1 then
    redis.call('LPUSH', KEYS[4], ARGV[4])
    local cap = tonumber(ARGV[5]) or 0
    if cap > 0 then redis.call('LTRIM', KEYS[4], 0, cap - 1) end
  end
  forget(KEYS[2], KEYS[3], KEYS[5], ARGV[3])
  local own = job_id(ARGV[2], tonumber(ARGV[6]))
  if own and own ~= ARGV[3] then forget(KEYS[2], KEYS[3], KEYS[5], own) end
  return n

elseif cmd == 'requeue_front' then
  -- Put a job back at the front of its queue, no attempt charged.
  -- KEYS: inflight, running, deliveries, queue, cancel   ARGV: payload, id, new payload
  -- Returns 1 when requeued, 0 when no longer in flight, 2 when cancelled meanwhile.
  return move_on(KEYS[1], KEYS[2], KEYS[3], KEYS[5], ARGV[2], ARGV[3], function()
    redis.call('RPUSH', KEYS[4], ARGV[4])
  end)

elseif cmd == 'requeue_failed' then
  -- KEYS: failed, queue   ARGV: failed entry, payload
  if redis.call('LREM', KEYS[1], 1, ARGV[2]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[3])
    return 1
  end
  return 0

elseif cmd == 'cancel' then
  -- Ask a running (or prefetched) job to stop. KEYS: running, cancel   ARGV: id
  -- Returns the worker holding it, or false when it is not in flight (nothing is left
  -- behind: the mark goes when the job leaves flight).
  local holder = redis.call('HGET', KEYS[1], ARGV[2])
  if holder then redis.call('SADD', KEYS[2], ARGV[2]) end
  return holder

elseif cmd == 'unlock' then
  -- Release a lock only if this holder still owns it. KEYS: lock   ARGV: token
  if redis.call('GET', KEYS[1]) == ARGV[2] then return redis.call('DEL', KEYS[1]) end
  return 0

elseif cmd == 'recover' then
  -- Return a dead worker's in-flight jobs to the front of their queues; a job that
  -- has now been delivered max_deliveries times without an outcome is a poison pill,
  -- and one whose cancellation was asked is dropped (its outcome: cancelled).
  -- KEYS: running, deliveries, failed, heartbeat, worker hash, workers set, cancel,
  --       then (inflight, queue) pairs
  -- ARGV: worker, max_deliveries, failed_at (ISO 8601), max payload bytes, max failed-list
  --       length (0: no cap), then the queue name of each pair
  if redis.call('EXISTS', KEYS[4]) == 1 then return {{}, {}, {}} end
  local recovered, poisoned, cancelled = {}, {}, {}
  local max_bytes, cap = tonumber(ARGV[5]), tonumber(ARGV[6]) or 0
  for i = 8, #KEYS, 2 do
    local queue_name = ARGV[6 + (i - 6) / 2]
    while true do
      local payload = redis.call('RPOP', KEYS[i])
      if not payload then break end
      local id = job_id(payload, max_bytes)
      local count = id and tonumber(redis.call('HGET', KEYS[2], id) or '0') or 0
      if cancel_requested(KEYS[7], id) then
        forget(KEYS[1], KEYS[2], KEYS[7], id)
        table.insert(cancelled, id)
      elseif id and count >= tonumber(ARGV[3]) then
        -- The shape of worker.failed.failed_entry: one shape for every failed entry.
        local entry = '{"id":' .. cjson.encode(id) .. ',"job":' .. payload
          .. ',"queue":' .. cjson.encode(queue_name)
          .. ',"error":{"type":"PoisonPill","kind":"crashed","message":' .. cjson.encode(
            'delivered ' .. count .. ' times; each delivery took down its worker')
          .. ',"traceback":null},"attempts":' .. count .. ',"deliveries":' .. count
          .. ',"worker_id":' .. cjson.encode(ARGV[2])
          .. ',"queued_at":null,"failed_at":' .. cjson.encode(ARGV[4]) .. '}'
        redis.call('LPUSH', KEYS[3], entry)
        if cap > 0 then redis.call('LTRIM', KEYS[3], 0, cap - 1) end
        forget(KEYS[1], KEYS[2], KEYS[7], id)
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
  return {recovered, poisoned, cancelled}
end

return redis.error_reply('unknown command ' .. tostring(cmd))
