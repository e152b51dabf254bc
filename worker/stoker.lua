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
  -- Returns the id (or nil) and the decoded payload (nil when never decoded or invalid).
  if max_bytes and #payload > max_bytes then return nil, nil end
  -- protocol.MAX_DEPTH: a deeper payload carries no id (fakeredis lacks the setting)
  if cjson.decode_max_depth then cjson.decode_max_depth(64) end
  local ok, obj = pcall(cjson.decode, payload)
  if not ok or type(obj) ~= 'table' then return nil, nil end
  local id = obj['id']
  if type(id) == 'string' and #id >= 1 and #id <= 128 and not string.find(id, '%c')
      and (not string.find(id, '[\128-\255]') or valid_utf8(id)) then
    return id, obj
  end
  return nil, obj
end

-- The id given to the k-th id-less payload of one call: `base` is 32 random hex digits
-- from the worker, the last 4 replaced by k (so one call names up to 65,535 jobs).
local function new_id(base, k)
  return string.sub(base, 1, 28) .. string.format('%04x', k)
end

-- An id-less JSON object gets "id" as its first member, the rest of its text untouched
-- (re-encoding could change numbers). Anything else is returned as it is.
local function with_id(payload, obj, id)
  if obj == nil or obj['id'] ~= nil then return payload end
  local _, e = string.find(payload, '^[ \t\r\n]*{[ \t\r\n]*')
  if not e then return payload end  -- a JSON array decodes to a table too
  local rest = string.sub(payload, e + 1)
  local sep = (string.sub(rest, 1, 1) == '}') and '' or ','
  return string.sub(payload, 1, e) .. '"id":"' .. id .. '"' .. sep .. rest
end

-- The processor a decoded payload names (a bare payload: its queue's default).
local function processor_of(obj, default)
  if obj == nil then return nil end
  local p = obj['processor']
  if p == nil then return default end
  if type(p) == 'string' then return p end
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
local function claim_id(running, deliveries, id, worker, count)
  if not id then return {'', 0} end
  if redis.call('HSETNX', running, id, worker) == 0 then
    local holder = redis.call('HGET', running, id)
    -- A prefetch never claims the id of the job this worker is running right now.
    if holder ~= worker or not count then return {holder, 0} end
  end
  if count then return {'', redis.call('HINCRBY', deliveries, id, 1)} end
  return {'', tonumber(redis.call('HGET', deliveries, id) or '0')}
end

local function claim(running, deliveries, payload, worker, count, max_bytes)
  return claim_id(running, deliveries, (job_id(payload, max_bytes)), worker, count)
end

-- Put a job just popped from its queue into `inflight`, giving an id-less object the
-- k-th new id, and claim it; returns {payload as moved, holder, deliveries}.
local function place(payload, id, obj, inflight, running, deliveries, worker, count, base, k)
  if not id and obj ~= nil and obj['id'] == nil then
    local named = with_id(payload, obj, new_id(base, k))
    if named ~= payload then payload, id = named, new_id(base, k) end
  end
  redis.call('LPUSH', inflight, payload)
  local c = claim_id(running, deliveries, id, worker, count)
  return {payload, c[1], c[2]}
end

-- Take the job at the head (right end) of `queue` into `inflight` (see `place`);
-- also returns the decoded payload. Nil when the queue is empty.
local function take(queue, inflight, running, deliveries, worker, count, max_bytes, base)
  local payload = redis.call('RPOP', queue)
  if not payload then return nil, nil end
  local id, obj = job_id(payload, max_bytes)
  return place(payload, id, obj, inflight, running, deliveries, worker, count, base, 0), obj
end

-- After a first job of processor `p`, take more of the same from the head of the same
-- queue, up to `limit` in all; a job of another processor at the head ends the batch.
local function take_more(out, queue, inflight, running, deliveries, worker, count,
                         max_bytes, base, p, default, limit)
  for k = 1, limit - 1 do
    local head = redis.call('LINDEX', queue, -1)
    if not head then break end
    local id, obj = job_id(head, max_bytes)
    if processor_of(obj, default) ~= p then break end
    redis.call('RPOP', queue)
    local t = place(head, id, obj, inflight, running, deliveries, worker, count, base, k)
    out[#out + 1], out[#out + 2], out[#out + 3] = t[1], t[2], t[3]
  end
  return out
end

-- "name=size\n..." -> {name = size}
local function batch_sizes(spec)
  local sizes = {}
  for name, size in string.gmatch(spec or '', '([^=\n]+)=(%d+)') do sizes[name] = tonumber(size) end
  return sizes
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
  -- ARGV: now, worker, promote_limit, prefetch (1: do not count the deliveries yet),
  --       ids of prefetched jobs that have just started, joined by "\n" (their
  --       deliveries are counted now), max payload bytes (a longer payload is never
  --       decoded here), id base (32 hex digits: ids for id-less payloads), batch sizes
  --       ("processor=size\n...", only processors that batch), then each queue's
  --       default processor ('' for none)
  -- Returns {payload, queue index, holder, deliveries, '', then (payload, holder,
  -- deliveries) of each further job of the batch}, or {false, 0, '', 0, next due}.
  local running, deliveries, scheduled = KEYS[1], KEYS[2], KEYS[3]
  for started in string.gmatch(ARGV[6], '[^\n]+') do
    redis.call('HINCRBY', deliveries, started, 1)
  end
  promote(scheduled, ARGV[2], tonumber(ARGV[4]))
  local count, max_bytes, base = ARGV[5] ~= '1', tonumber(ARGV[7]), ARGV[8]
  for i = 4, #KEYS, 2 do
    local q = (i - 2) / 2
    local t, obj = take(KEYS[i], KEYS[i + 1], running, deliveries, ARGV[3], count,
                        max_bytes, base)
    if t then
      local out = {t[1], q, t[2], t[3], ''}
      if ARGV[9] ~= '' then
        local default = ARGV[9 + q] ~= '' and ARGV[9 + q] or nil
        local p = processor_of(obj, default)
        local limit = p and batch_sizes(ARGV[9])[p]
        if limit and limit > 1 then
          take_more(out, KEYS[i], KEYS[i + 1], running, deliveries, ARGV[3], count,
                    max_bytes, base, p, default, limit)
        end
      end
      return out
    end
  end
  local nxt = redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
  return {false, 0, '', 0, nxt[2] or ''}

elseif cmd == 'more' then
  -- Fill a batch while it waits (WORKER_BATCH_WAIT_MS): up to `limit` more jobs of
  -- `processor` from the head of one queue. KEYS: running, deliveries, queue, inflight
  -- ARGV: worker, max payload bytes, id base, processor, the queue's default processor
  --       ('' for none), limit
  -- Returns (payload, holder, deliveries) triples.
  local default = ARGV[6] ~= '' and ARGV[6] or nil
  return take_more({}, KEYS[3], KEYS[4], KEYS[1], KEYS[2], ARGV[2], true, tonumber(ARGV[3]),
                   ARGV[4], ARGV[5], default, tonumber(ARGV[7]) + 1)

elseif cmd == 'land' then
  -- Claim the job an idle worker's BLMOVE just put in its landing list: sent right
  -- behind the BLMOVE on the same connection, Redis runs it as soon as the BLMOVE
  -- returns, so the claim costs no round trip of its own. Moves it into flight (named
  -- when id-less) and claims it. KEYS: landing, inflight, running, deliveries
  -- ARGV: worker, max payload bytes, id base
  -- Returns {payload as moved, holder, deliveries}, or false when nothing landed.
  local payload = redis.call('RPOP', KEYS[1])
  if not payload then return false end
  local id, obj = job_id(payload, tonumber(ARGV[3]))
  return place(payload, id, obj, KEYS[2], KEYS[3], KEYS[4], ARGV[2], true, ARGV[4], 0)

elseif cmd == 'id' then
  -- The job id Stoker sees in a payload ('' for none). ARGV: payload, max payload bytes
  return (job_id(ARGV[2], tonumber(ARGV[3]))) or ''

elseif cmd == 'rewrite' then
  -- Give an id-less payload its id. KEYS: inflight, running, deliveries
  -- ARGV: old payload, new payload, worker, max payload bytes
  redis.call('LREM', KEYS[1], 1, ARGV[2])
  redis.call('LPUSH', KEYS[1], ARGV[3])
  return claim(KEYS[2], KEYS[3], ARGV[3], ARGV[4], true, tonumber(ARGV[5]))

elseif cmd == 'release' then
  -- Hand a never started job back: to the front of its queue, its delivery uncounted.
  -- A prefetched job was never counted; a job landed by a wait that lost the race to
  -- another queue's (`worker.blockers`) was, and is counted back ('1' in ARGV[5]).
  -- KEYS: inflight, running, deliveries, queue
  -- ARGV: payload, the worker whose claim it holds ('' for a duplicate: none),
  --       max payload bytes, '1' to count its delivery back
  local n = redis.call('LREM', KEYS[1], 1, ARGV[2])
  if n == 1 then redis.call('RPUSH', KEYS[4], ARGV[2]) end
  local id = job_id(ARGV[2], tonumber(ARGV[4]))
  if id and ARGV[3] ~= '' and redis.call('HGET', KEYS[2], id) == ARGV[3] then
    redis.call('HDEL', KEYS[2], id)
    if n == 1 and ARGV[5] == '1' and redis.call('HINCRBY', KEYS[3], id, -1) <= 0 then
      redis.call('HDEL', KEYS[3], id)
    end
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
  --       then (inflight, queue, landing) triples (a landed job was never claimed: it
  --       goes back to the front of its queue as it is)
  -- ARGV: worker, max_deliveries, failed_at (ISO 8601), max payload bytes, max failed-list
  --       length (0: no cap), then the queue name of each triple
  if redis.call('EXISTS', KEYS[4]) == 1 then return {{}, {}, {}} end
  local recovered, poisoned, cancelled = {}, {}, {}
  local max_bytes, cap = tonumber(ARGV[5]), tonumber(ARGV[6]) or 0
  for i = 8, #KEYS, 3 do
    local queue_name = ARGV[6 + (i - 5) / 3]
    while true do
      local landed = redis.call('RPOP', KEYS[i + 2])
      if not landed then break end
      redis.call('RPUSH', KEYS[i + 1], landed)
    end
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
