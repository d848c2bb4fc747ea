namespace ServerlessInference.Redis;

public sealed partial class RedisJobQueue
{
    // Every state change is one Lua script: atomic, and one round trip. StackExchange.Redis sends a script's SHA1
    // (EVALSHA) once the server has it cached. Scripts reach the queue's other keys by name from the base key they are
    // given (ARGV): every key of a queue carries the same hash tag, so they share one cluster slot.

    /// <summary>True when <c>id</c> is still pending for <c>consumer</c> with the delivery count the lease saw: a
    /// lease whose job was reclaimed (count moved on) or settled (no longer pending), or whose partition is gone, is
    /// stale and does nothing.</summary>
    private const string HeldFunction = """
        local function held(stream, group, consumer, id, count)
          if redis.call('EXISTS', stream) == 0 then return false end
          local p = redis.call('XPENDING', stream, group, id, id, 1)
          return p[1] ~= nil and p[1][2] == consumer and p[1][4] == tonumber(count)
        end
        """;

    /// <summary>Bookkeeping when a job leaves the queue (completed or dead-lettered): its model's count, the total and
    /// the byte budget go down (a counter at zero is deleted), and a partition with nothing queued or pending is removed
    /// with its index entries; when it was the last, every counter goes, so an empty queue keeps no key but its dead
    /// letters. Atomic with the settle, so an enqueue never adds to a partition that is being removed (it finds it gone
    /// and creates it).</summary>
    private const string LeaveFunction = """
        local function leave(base, key, stream, bytes)
          local model = string.match(key, '^[^#]*')
          if redis.call('HINCRBY', base .. ':models', model, -1) <= 0 then redis.call('HDEL', base .. ':models', model) end
          if redis.call('DECR', base .. ':count') <= 0 then redis.call('DEL', base .. ':count') end
          if tonumber(bytes) > 0 and redis.call('DECRBY', base .. ':bytes', bytes) <= 0 then redis.call('DEL', base .. ':bytes') end
          if redis.call('XLEN', stream) == 0 then
            redis.call('DEL', stream)
            redis.call('ZREM', base .. ':parts', key)
            redis.call('ZREM', base .. ':waiting', key)
            redis.call('HDEL', base .. ':reclaims', key)
            if redis.call('ZCARD', base .. ':parts') == 0 then
              redis.call('DEL', base .. ':models', base .. ':count', base .. ':bytes', base .. ':reclaims', base .. ':waiting')
            end
          end
        end
        """;

    /// <summary>KEYS: partition stream, index, waiting, per-model counts, total count, byte counter. ARGV: capacity,
    /// the model's capacity (empty: none), affinity key, model, group, channel, the request's bytes, the byte budget,
    /// fields... Creates the partition (stream, group, index entry) when it does not exist. Returns 1, 0 when the queue
    /// is full, -1 when the model is, -2 when the bytes do not fit. The byte counter of a queue with no partition is
    /// reset first (it can only be off after an outside hand deleted entries).</summary>
    private const string EnqueueScript = """
        if tonumber(redis.call('GET', KEYS[5]) or '0') >= tonumber(ARGV[1]) then return 0 end
        if ARGV[2] ~= '' and tonumber(redis.call('HGET', KEYS[4], ARGV[4]) or '0') >= tonumber(ARGV[2]) then return -1 end
        local bytes = tonumber(ARGV[7])
        if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('DEL', KEYS[6]) end
        if tonumber(redis.call('GET', KEYS[6]) or '0') + bytes > tonumber(ARGV[8]) then return -2 end
        if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[5], '0', 'MKSTREAM') end
        redis.call('ZADD', KEYS[2], 0, ARGV[3])
        local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 9))
        redis.call('ZADD', KEYS[3], 'NX', tonumber(string.match(id, '^(%d+)')), ARGV[3])
        redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
        redis.call('INCR', KEYS[5])
        if bytes > 0 then redis.call('INCRBY', KEYS[6], bytes) end
        redis.call('PUBLISH', ARGV[6], '')
        return 1
        """;

    /// <summary>KEYS: index, waiting, reclaim cursors. ARGV: base, group, consumer, count, min idle ms (0: skip
    /// reclaiming), channel, the lease-expired error, affinity wait ms (-1: FIFO), load wait ms, then the warm keys, the
    /// keys warm elsewhere and the closed keys, each list preceded by its length.
    /// <para>Reclaim first: <c>XAUTOCLAIM</c> finds leases idle for the lease time in up to 16
    /// partitions (a rotating cursor over the index, and a cursor per partition
    /// across calls so long-renewed leases at the head of a PEL never hide expired ones) and puts each job back as a new
    /// entry of its partition carrying its deliveries (<c>n</c>) and error (<c>err</c>), like an abandon: the selection
    /// rule then applies to it as to any waiting job.</para>
    /// <para>Then the rule of <c>JobPreference</c>, over the waiting ZSET (affinity key → the enqueue time in ms of its
    /// oldest undelivered entry, the stream id's time part, against the server's <c>TIME</c>). Returns
    /// <c>{ms until a waiting job becomes due (-1: none, or jobs were taken), {{key, id, delivery
    /// count, fields}...}}</c>.</para></summary>
    private const string ReceiveScript = """
        local base, group, consumer = ARGV[1], ARGV[2], ARGV[3]
        local n = tonumber(ARGV[4])
        local minIdle = tonumber(ARGV[5])
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local function ms(id) return tonumber(string.match(id, '^(%d+)')) end
        local function stream(k) return base .. ':q:' .. k end
        local function modelOf(k) return string.match(k, '^[^#]*') end

        if minIdle > 0 then
          local after = redis.call('HGET', KEYS[3], '') or ''
          local parts = redis.call('ZRANGE', KEYS[1], after == '' and '-' or ('(' .. after), '+', 'BYLEX', 'LIMIT', 0, 16)
          local moved = false
          for _, k in ipairs(parts) do
            local s = stream(k)
            local ok, r = pcall(redis.call, 'XAUTOCLAIM', s, group, consumer, minIdle, redis.call('HGET', KEYS[3], k) or '0-0', 'COUNT', 32)
            if ok then
              if r[1] == '0-0' then redis.call('HDEL', KEYS[3], k) else redis.call('HSET', KEYS[3], k, r[1]) end
              for _, e in ipairs(r[2]) do
                if e[2] then
                  local p = redis.call('XPENDING', s, group, e[1], e[1], 1)
                  local f, fields, prior, err = e[2], {}, 0, nil
                  for i = 1, #f, 2 do
                    if f[i] == 'n' then prior = tonumber(f[i + 1])
                    elseif f[i] == 'err' then err = f[i + 1]
                    else
                      fields[#fields + 1] = f[i]
                      fields[#fields + 1] = f[i + 1]
                    end
                  end
                  fields[#fields + 1] = 'n'
                  fields[#fields + 1] = prior + p[1][4] - 1
                  fields[#fields + 1] = 'err'
                  fields[#fields + 1] = err or ARGV[7]
                  local id = redis.call('XADD', s, '*', unpack(fields))
                  redis.call('XACK', s, group, e[1])
                  redis.call('XDEL', s, e[1])
                  redis.call('ZADD', KEYS[2], 'NX', ms(id), k)
                  moved = true
                end
              end
            end
          end
          if #parts < 16 then redis.call('HDEL', KEYS[3], '') else redis.call('HSET', KEYS[3], '', parts[#parts]) end
          if moved then redis.call('PUBLISH', ARGV[6], '') end
        end

        local out = {}
        local z = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
        local order, since = {}, {}
        for i = 1, #z, 2 do
          order[#order + 1] = z[i]
          since[z[i]] = tonumber(z[i + 1])
        end

        local function take(k, count)
          local s = stream(k)
          local ok, r = pcall(redis.call, 'XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', s, '>')
          if not ok then
            if redis.call('EXISTS', s) == 0 then
              redis.call('ZREM', KEYS[2], k)
              redis.call('ZREM', KEYS[1], k)
              redis.call('HDEL', KEYS[3], k)
              since[k] = nil
              return
            end
            redis.call('XGROUP', 'CREATE', s, group, '0')
            r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', s, '>')
          end
          local got, last = 0, nil
          if r then
            for _, e in ipairs(r[1][2]) do
              out[#out + 1] = {k, e[1], 1, e[2]}
              got = got + 1
              last = e[1]
            end
          end
          local nxt = nil
          if got == count then nxt = redis.call('XRANGE', s, '(' .. last, '+', 'COUNT', 1)[1] end
          if nxt then
            since[k] = ms(nxt[1])
            redis.call('ZADD', KEYS[2], 'XX', since[k], k)
          else
            since[k] = nil
            redis.call('ZREM', KEYS[2], k)
          end
        end

        local wait = tonumber(ARGV[8])
        if wait < 0 then
          -- FIFO: the partition whose oldest job came first; all the rest from it when it is the only one.
          while #out < n do
            local best, second = nil, nil
            for k, s in pairs(since) do
              if best == nil or s < since[best] or (s == since[best] and k < best) then
                second = best
                best = k
              elseif second == nil or s < since[second] or (s == since[second] and k < second) then
                second = k
              end
            end
            if best == nil then break end
            take(best, second == nil and (n - #out) or 1)
          end
          return {-1, out}
        end

        local loadWait = tonumber(ARGV[9])
        local i = 10
        local warm, warmSet, warmModel = {}, {}, {}
        local c = tonumber(ARGV[i])
        for j = 1, c do
          local k = ARGV[i + j]
          warm[#warm + 1] = k
          warmSet[k] = true
          warmModel[modelOf(k)] = true
        end
        i = i + c + 1
        local elsewhere = {}
        c = tonumber(ARGV[i])
        for j = 1, c do elsewhere[ARGV[i + j]] = true end
        i = i + c + 1
        local closed = {}
        c = tonumber(ARGV[i])
        for j = 1, c do closed[ARGV[i + j]] = true end
        -- A model named closed closes its model#prefix keys too; one warm elsewhere makes its keys warm elsewhere.
        local function isClosed(k) return closed[k] or closed[modelOf(k)] end
        local function isElsewhere(k) return elsewhere[k] or elsewhere[modelOf(k)] end

        -- 1. Warm here, in the worker's fair order.
        for _, k in ipairs(warm) do
          if #out >= n then break end
          if since[k] then take(k, n - #out) end
        end

        -- Every other key not closed, once it waited JobPreference.WaitFor: free (its model warm here), cold (warm
        -- nowhere) or overdue (warm elsewhere). `order` is oldest first.
        local free, cold, overdue, due = {}, {}, {}, -1
        for _, k in ipairs(order) do
          if since[k] and not warmSet[k] and not isClosed(k) then
            -- A key of a model warm here waits only for a worker holding that very key; another for its model's holders.
            local mw = warmModel[modelOf(k)] == true
            local ew = (mw and elsewhere[k]) or ((not mw) and isElsewhere(k))
            local w = ew and wait or 0
            if not mw and loadWait > w then w = loadWait end
            local d = since[k] + w - now
            if d <= 0 then
              if mw then free[#free + 1] = k elseif ew then overdue[#overdue + 1] = k else cold[#cold + 1] = k end
            elseif due < 0 or d < due then
              due = d
            end
          end
        end
        -- 2. Free keys: no load either.
        for _, k in ipairs(free) do
          if #out >= n then break end
          take(k, n - #out)
        end
        -- With warm or free work, the batch is not filled with other models' jobs (each a load evicting a model in demand).
        if #out > 0 then return {-1, out} end
        -- 3. One model to load: the oldest due cold key, else the oldest overdue one, with that model's other due keys.
        local load = {}
        for _, k in ipairs(cold) do load[#load + 1] = k end
        for _, k in ipairs(overdue) do load[#load + 1] = k end
        if #load > 0 then
          local model = modelOf(load[1])
          for _, k in ipairs(load) do
            if #out >= n then break end
            if modelOf(k) == model then take(k, n - #out) end
          end
          return {-1, out}
        end
        return {math.floor(due), out}
        """;

    /// <summary>KEYS: partition stream, [request body]. ARGV: group, consumer, id, count, base, affinity key, the
    /// request's bytes.
    /// Acknowledges and deletes the entry (and the request body kept beside it), so a stream only ever holds jobs not
    /// yet acknowledged (no trimming needed, and XLEN counts them).</summary>
    private const string CompleteScript = HeldFunction + "\n" + LeaveFunction + """

        if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
        redis.call('XDEL', KEYS[1], ARGV[3])
        if KEYS[2] then redis.call('DEL', KEYS[2]) end
        leave(ARGV[5], ARGV[6], KEYS[1], ARGV[7])
        return 1
        """;

    /// <summary>KEYS: partition stream. ARGV: group, consumer, id, count. <c>XCLAIM</c> to the same consumer resets the
    /// idle time; <c>JUSTID</c> leaves the delivery count alone.</summary>
    private const string RenewScript = HeldFunction + """

        if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
        redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
        return 1
        """;

    /// <summary>KEYS: partition stream, waiting. ARGV: group, consumer, id, count, deliveries so far, error, channel,
    /// affinity key. Re-adds the job as a new entry of its partition carrying its delivery count (<c>n</c>) and error
    /// (<c>err</c>), then acknowledges and deletes the old one: waiting again at once, behind the partition's jobs
    /// already waiting, and from now on as far as the affinity wait is concerned.</summary>
    private const string AbandonScript = HeldFunction + """

        if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
        local e = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
        redis.call('XDEL', KEYS[1], ARGV[3])
        if e[1] == nil then return 0 end
        local f = e[1][2]
        local out = {}
        for i = 1, #f, 2 do
          if f[i] ~= 'n' and f[i] ~= 'err' then
            out[#out + 1] = f[i]
            out[#out + 1] = f[i + 1]
          end
        end
        out[#out + 1] = 'n'
        out[#out + 1] = ARGV[5]
        if ARGV[6] ~= '' then
          out[#out + 1] = 'err'
          out[#out + 1] = ARGV[6]
        end
        local id = redis.call('XADD', KEYS[1], '*', unpack(out))
        redis.call('ZADD', KEYS[2], 'NX', tonumber(string.match(id, '^(%d+)')), ARGV[8])
        redis.call('PUBLISH', ARGV[7], '')
        return 1
        """;

    /// <summary>KEYS: partition stream, dead-letter stream, [request body]. ARGV: group, consumer, id, count (empty:
    /// skip the lease check, for unreadable entries), max length, reason, deliveries, at (UTC ticks), base, affinity
    /// key, the request's bytes. A request kept beside the entry moves into the dead letter, so it can be inspected and replayed.</summary>
    private const string DeadLetterScript = HeldFunction + "\n" + LeaveFunction + """

        if ARGV[4] ~= '' and not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
        local e = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
        redis.call('XDEL', KEYS[1], ARGV[3])
        local out = {}
        if e[1] ~= nil then out = e[1][2] end
        if KEYS[3] then
          local body = redis.call('GET', KEYS[3])
          if body then
            out[#out + 1] = 'request'
            out[#out + 1] = body
          end
          redis.call('DEL', KEYS[3])
        end
        out[#out + 1] = 'reason'
        out[#out + 1] = ARGV[6]
        out[#out + 1] = 'deliveries'
        out[#out + 1] = ARGV[7]
        out[#out + 1] = 'at'
        out[#out + 1] = ARGV[8]
        out[#out + 1] = 'source'
        out[#out + 1] = ARGV[3]
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(out))
        leave(ARGV[9], ARGV[10], KEYS[1], ARGV[11])
        return 1
        """;

    /// <summary>KEYS: index, per-model counts, total count. ARGV: base, group. Returns <c>{queued, in flight, then
    /// model, queued, in flight per model}</c>: every entry of a partition is unacknowledged (acknowledged ones are
    /// deleted), and its PEL holds the delivered ones. It also heals what only an outside hand can break (entries deleted
    /// without a settle): a partition found empty is removed, and counts that differ from the streams are rewritten.</summary>
    private const string DepthScript = """
        local parts = redis.call('ZRANGE', KEYS[1], 0, -1)
        local queued, pending = 0, 0
        local byModel, models = {}, {}
        for _, k in ipairs(parts) do
          local s = ARGV[1] .. ':q:' .. k
          local len = redis.call('XLEN', s)
          if len > 0 then
            local ok, p = pcall(redis.call, 'XPENDING', s, ARGV[2])
            local f = 0
            if ok then f = p[1] end
            local q = len - f
            if q < 0 then q = 0 end
            local m = string.match(k, '^[^#]*')
            if not byModel[m] then
              byModel[m] = {0, 0}
              models[#models + 1] = m
            end
            byModel[m][1] = byModel[m][1] + q
            byModel[m][2] = byModel[m][2] + f
            queued = queued + q
            pending = pending + f
          else
            redis.call('DEL', s)
            redis.call('ZREM', KEYS[1], k)
            redis.call('ZREM', ARGV[1] .. ':waiting', k)
            redis.call('HDEL', ARGV[1] .. ':reclaims', k)
          end
        end
        local counted = redis.call('HGETALL', KEYS[2])
        local same = tonumber(redis.call('GET', KEYS[3]) or '0') == queued + pending and #counted == 2 * #models
        for i = 1, #counted, 2 do
          local m = byModel[counted[i]]
          if not m or m[1] + m[2] ~= tonumber(counted[i + 1]) then same = false end
        end
        if not same then
          redis.call('DEL', KEYS[2], KEYS[3])
          if queued + pending > 0 then redis.call('SET', KEYS[3], queued + pending) end
          for _, m in ipairs(models) do redis.call('HSET', KEYS[2], m, byModel[m][1] + byModel[m][2]) end
        end
        local out = {queued, pending}
        for _, m in ipairs(models) do
          out[#out + 1] = m
          out[#out + 1] = byModel[m][1]
          out[#out + 1] = byModel[m][2]
        end
        return out
        """;
}
