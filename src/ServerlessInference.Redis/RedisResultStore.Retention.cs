using System.Globalization;
using ServerlessInference.Jobs;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

// The bound on what ended jobs keep (Inference:Results:MaxRetainedRecords / MaxRetainedBytes) and the short life of an
// answered job's record (AnsweredRetention). An index in one slot ({prefix}{results}:retained, a sorted set of job ids
// scored by expiry in Unix ms; :sizes, each record's bytes; :bytes, their sum) lists every ended job's record. Each
// record that ends is added by one script, which also forgets records that expired on their own and returns the ids to
// evict, closest to expiry first, while either bound is exceeded; the records themselves are deleted one by one after
// it, as they live in other cluster slots.
public sealed partial class RedisResultStore
{
    /// <summary>KEYS: index, sizes, total. ARGV: id, bytes, expires (ms), now (ms), max records, max bytes. Returns the
    /// ids to delete. A record counted already (a success replacing a dead-letter) is counted again at its new size.</summary>
    private const string RetainScript = """
        local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[4], 'LIMIT', 0, 256)
        for _, id in ipairs(gone) do
          redis.call('DECRBY', KEYS[3], tonumber(redis.call('HGET', KEYS[2], id) or '0'))
          redis.call('HDEL', KEYS[2], id)
          redis.call('ZREM', KEYS[1], id)
        end
        local before = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
        redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
        redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
        redis.call('INCRBY', KEYS[3], tonumber(ARGV[2]) - before)
        local evicted = {}
        local count = redis.call('ZCARD', KEYS[1])
        local total = tonumber(redis.call('GET', KEYS[3]) or '0')
        while count > 1 and (count > tonumber(ARGV[5]) or total > tonumber(ARGV[6])) do
          local id = redis.call('ZPOPMIN', KEYS[1])[1]
          total = redis.call('DECRBY', KEYS[3], tonumber(redis.call('HGET', KEYS[2], id) or '0'))
          redis.call('HDEL', KEYS[2], id)
          count = count - 1
          evicted[#evicted + 1] = id
        end
        return evicted
        """;

    /// <summary>KEYS: record. ARGV: retention ms. Shortens an ended job's TTL; returns 1 when it did.</summary>
    private static readonly string s_answeredScript = string.Create(CultureInfo.InvariantCulture, $"local Succeeded = {(int)JobStatus.Succeeded}\n") + """
        local s = tonumber(redis.call('HGET', KEYS[1], 'status'))
        if s == nil or s < Succeeded then return 0 end
        local ttl = redis.call('PTTL', KEYS[1])
        if ttl >= 0 and ttl <= tonumber(ARGV[1]) then return 0 end
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        return 1
        """;

    private RedisKey RetainedIndexKey => _redisOptions.KeyPrefix + "{results}:retained";

    private RedisKey RetainedSizesKey => _redisOptions.KeyPrefix + "{results}:sizes";

    private RedisKey RetainedBytesKey => _redisOptions.KeyPrefix + "{results}:bytes";

    public async ValueTask MarkAnsweredAsync(string jobId, CancellationToken cancellationToken)
    {
        var retention = _options.AnsweredRetention;
        var shortened = (long)await EvaluateAsync(s_answeredScript, Key(jobId), [Milliseconds(retention)]).ConfigureAwait(false);
        if (shortened == 1)
        {
            // The index follows, so the record's bytes stop counting when it goes.
            var expires = (_time.GetUtcNow() + retention).ToUnixTimeMilliseconds();
            await _unavailable.RunAsync(() => _redis.GetDatabase().SortedSetAddAsync(RetainedIndexKey, jobId, expires, SortedSetWhen.Exists)).ConfigureAwait(false);
        }
    }

    /// <summary>Counts a record that just ended (of <paramref name="bytes"/>, kept for <paramref name="ttl"/>) and deletes
    /// the records evicted to make room. Best effort: the record is stored already, and failing its publish over the
    /// index would make a worker run the job again; a record the index missed still expires with its TTL.</summary>
    private async ValueTask RetainAsync(string jobId, long bytes, TimeSpan ttl)
    {
        try
        {
            await IndexAsync(jobId, bytes, ttl).ConfigureAwait(false);
        }
        catch (InferenceException ex) when (ex.Error == InferenceError.Unavailable)
        {
            // Redis went away between the two scripts.
        }
    }

    private async ValueTask IndexAsync(string jobId, long bytes, TimeSpan ttl)
    {
        var now = _time.GetUtcNow();
        var evicted = (RedisResult[])(await _unavailable.RunAsync(() => _redis.GetDatabase().ScriptEvaluateAsync(RetainScript,
            [RetainedIndexKey, RetainedSizesKey, RetainedBytesKey],
            [jobId, bytes, (now + ttl).ToUnixTimeMilliseconds(), now.ToUnixTimeMilliseconds(), _options.MaxRetainedRecords, _options.MaxRetainedBytes])).ConfigureAwait(false))!;
        if (evicted.Length == 0)
        {
            return;
        }

        var database = _redis.GetDatabase();
        await _unavailable.RunAsync(() => Task.WhenAll(evicted.Select(id => database.KeyDeleteAsync(Key((string)id!))))).ConfigureAwait(false);
    }

    private static long RecordBytes(JobRecord record, long responseBytes) =>
        256 + responseBytes + (record.Id.Length + record.Model.Length + record.Version.Length + (record.Error?.Length ?? 0)) * 2L;
}
