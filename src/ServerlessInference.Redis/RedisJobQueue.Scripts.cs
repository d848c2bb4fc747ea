namespace ServerlessInference.Redis;

public sealed partial class RedisJobQueue
{
    // Every state change is one Lua script: atomic, and one round trip. StackExchange.Redis sends a script's SHA1
    // (EVALSHA) once the server has it cached.

    /// <summary>True when <c>id</c> is still pending for <c>consumer</c> with the delivery count the lease saw: a
    /// lease whose job was reclaimed (count moved on) or settled (no longer pending) is stale and does nothing.</summary>
    private const string HeldFunction = """
        local function held(stream, group, consumer, id, count)
          local p = redis.call('XPENDING', stream, group, id, id, 1)
          return p[1] ~= nil and p[1][2] == consumer and p[1][4] == tonumber(count)
        end
        """;

    /// <summary>KEYS: stream. ARGV: capacity, channel, fields... Returns 0 when full.</summary>
    private const string EnqueueScript = """
        if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
        redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
        redis.call('PUBLISH', ARGV[2], '')
        return 1
        """;

    /// <summary>KEYS: stream, reclaim cursor. ARGV: group, consumer, count, min idle ms (0: skip reclaiming).
    /// Returns <c>{id, delivery count, fields}</c> per job: first leases that expired (<c>XAUTOCLAIM</c>, which counts
    /// the delivery), then new jobs (<c>XREADGROUP ... &gt;</c>, delivery 1). The cursor carries the
    /// <c>XAUTOCLAIM</c> scan across calls so long-renewed leases at the head of the PEL never hide expired ones.</summary>
    private const string ReceiveScript = """
        local n = tonumber(ARGV[3])
        local minIdle = tonumber(ARGV[4])
        local out = {}
        if minIdle > 0 then
          local cursor = redis.call('GET', KEYS[2]) or '0-0'
          for _ = 1, 10 do
            local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], minIdle, cursor, 'COUNT', n - #out)
            cursor = r[1]
            for _, e in ipairs(r[2]) do
              if e[2] then
                local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
                out[#out + 1] = {e[1], p[1][4], e[2]}
              end
            end
            if cursor == '0-0' or #out >= n then break end
          end
          redis.call('SET', KEYS[2], cursor)
        end
        if #out < n then
          local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', n - #out, 'STREAMS', KEYS[1], '>')
          if r then
            for _, e in ipairs(r[1][2]) do out[#out + 1] = {e[1], 1, e[2]} end
          end
        end
        return out
        """;

    /// <summary>KEYS: stream, [request body]. ARGV: group, consumer, id, count. Acknowledges and deletes the entry
    /// (and the request body kept beside it), so the stream only ever holds jobs not yet acknowledged (no trimming
    /// needed, and XLEN counts them).</summary>
    private const string CompleteScript = HeldFunction + """

        if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
        redis.call('XDEL', KEYS[1], ARGV[3])
        if KEYS[2] then redis.call('DEL', KEYS[2]) end
        return 1
        """;

    /// <summary>KEYS: stream. ARGV: group, consumer, id, count. <c>XCLAIM</c> to the same consumer resets the idle
    /// time; <c>JUSTID</c> leaves the delivery count alone.</summary>
    private const string RenewScript = HeldFunction + """

        if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
        redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
        return 1
        """;

    /// <summary>KEYS: stream. ARGV: group, consumer, id, count, deliveries so far, error, channel. Re-adds the job as
    /// a new entry carrying its delivery count (<c>n</c>) and error (<c>err</c>), then acknowledges and deletes the
    /// old one: visible to the next <c>XREADGROUP</c> at once, behind jobs already waiting.</summary>
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
        redis.call('XADD', KEYS[1], '*', unpack(out))
        redis.call('PUBLISH', ARGV[7], '')
        return 1
        """;

    /// <summary>KEYS: stream, dead-letter stream, [request body]. ARGV: group, consumer, id, count (empty: skip the
    /// lease check, for unreadable entries), max length, reason, deliveries, at (UTC ticks). A request kept beside the
    /// entry moves into the dead letter, so it can be inspected and replayed.</summary>
    private const string DeadLetterScript = HeldFunction + """

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
        return 1
        """;

    /// <summary>KEYS: stream. ARGV: group. Returns <c>{queued, in flight}</c>: every entry in the stream is
    /// unacknowledged (acknowledged ones are deleted), and the PEL holds the delivered ones.</summary>
    private const string DepthScript = """
        local len = redis.call('XLEN', KEYS[1])
        if len == 0 then return {0, 0} end
        local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
        local pending = 0
        if ok then pending = p[1] end
        local queued = len - pending
        if queued < 0 then queued = 0 end
        return {queued, pending}
        """;
}
