using System.Text.Json;
using Microsoft.Extensions.Options;
using ServerlessInference.Workers;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

/// <summary>An <see cref="IWorkerRegistry"/> in Redis, with a model → workers index for routing and <c>/status</c>.</summary>
/// <remarks>
/// <para>Keys (hash-tagged into one cluster slot): <c>{prefix}{workers}:w:{id}</c> the worker's status as JSON with
/// a TTL of <see cref="RedisOptions.WorkerTtl"/>; <c>{prefix}{workers}</c> a sorted set of worker ids scored by
/// expiry; <c>...:m:{model}/{version}</c> a sorted set of the workers holding that model warm, scored likewise;
/// <c>...:wm:{id}</c> the model keys a worker is listed under, so a heartbeat can drop the models it evicted.</para>
/// <para><c>...:coldstarts</c> a list of the last <see cref="IWorkerRegistry.ColdStartsKept"/> cold starts as JSON,
/// newest first (no TTL: it is bounded by count).</para>
/// <para>Expiry uses the Redis server's clock (<c>TIME</c>), so hosts with skewed clocks agree. A worker that stops
/// heartbeating disappears when its key expires; the indexes are pruned lazily by readers.</para>
/// <para>Thread-safe.</para>
/// </remarks>
public sealed class RedisWorkerRegistry : IWorkerRegistry
{
    private const string NowFunction = """
        local function now()
          local t = redis.call('TIME')
          return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end
        """;

    /// <summary>KEYS: status, index, worker's model set, model index keys... ARGV: json, ttl ms, id.</summary>
    private const string HeartbeatScript = NowFunction + """

        local ttl = tonumber(ARGV[2])
        local expiry = now() + ttl
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
        redis.call('ZADD', KEYS[2], expiry, ARGV[3])
        redis.call('PEXPIRE', KEYS[2], ttl)
        local warm = {}
        for i = 4, #KEYS do warm[KEYS[i]] = true end
        for _, k in ipairs(redis.call('SMEMBERS', KEYS[3])) do
          if not warm[k] then redis.call('ZREM', k, ARGV[3]) end
        end
        redis.call('DEL', KEYS[3])
        for i = 4, #KEYS do
          redis.call('ZADD', KEYS[i], expiry, ARGV[3])
          redis.call('PEXPIRE', KEYS[i], ttl)
          redis.call('SADD', KEYS[3], KEYS[i])
        end
        if #KEYS >= 4 then redis.call('PEXPIRE', KEYS[3], ttl) end
        return 1
        """;

    /// <summary>KEYS: status, index, worker's model set. ARGV: id.</summary>
    private const string RemoveScript = """
        for _, k in ipairs(redis.call('SMEMBERS', KEYS[3])) do redis.call('ZREM', k, ARGV[1]) end
        redis.call('DEL', KEYS[1], KEYS[3])
        redis.call('ZREM', KEYS[2], ARGV[1])
        return 1
        """;

    /// <summary>KEYS: a sorted set of worker ids (the index or a model's). ARGV: status key prefix. Prunes expired
    /// members and returns the statuses of the live ones.</summary>
    private const string ListScript = NowFunction + """

        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now())
        local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
        if #ids == 0 then return {} end
        local keys = {}
        for i, id in ipairs(ids) do keys[i] = ARGV[1] .. id end
        local out = {}
        for _, v in ipairs(redis.call('MGET', unpack(keys))) do
          if v then out[#out + 1] = v end
        end
        return out
        """;

    /// <summary>KEYS: the cold-start list. ARGV: json, how many to keep.</summary>
    private const string RecordColdStartScript = """
        redis.call('LPUSH', KEYS[1], ARGV[1])
        redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
        return 1
        """;

    private readonly IConnectionMultiplexer _redis;
    private readonly RedisOptions _options;
    private readonly RedisUnavailable _unavailable;
    private readonly string _root;
    private readonly RedisKey _index;

    public RedisWorkerRegistry(IConnectionMultiplexer redis, IOptions<RedisOptions> options)
    {
        _redis = redis;
        _options = options.Value;
        _unavailable = new RedisUnavailable("the worker registry", _options.UnavailableRetryAfterSeconds);
        _root = _options.KeyPrefix + "{workers}";
        _index = _root;
    }

    public async ValueTask HeartbeatAsync(WorkerStatus status, CancellationToken cancellationToken)
    {
        var keys = new List<RedisKey> { StatusKey(status.Id), _index, ModelsOfKey(status.Id) };
        keys.AddRange(status.WarmModels.Select(m => ModelKey(m.Model, m.Version)).Distinct());
        var json = JsonSerializer.Serialize(status, RedisJson.Default.WorkerStatus);
        await EvaluateAsync(HeartbeatScript, [.. keys], [json, Math.Max(1, (long)_options.WorkerTtl.TotalMilliseconds), status.Id]).ConfigureAwait(false);
    }

    public async ValueTask RemoveAsync(string workerId, CancellationToken cancellationToken) =>
        await EvaluateAsync(RemoveScript, [StatusKey(workerId), _index, ModelsOfKey(workerId)], [workerId]).ConfigureAwait(false);

    /// <summary>Live workers, oldest first.</summary>
    public async ValueTask<IReadOnlyList<WorkerStatus>> ListAsync(CancellationToken cancellationToken) =>
        (await ReadAsync(_index).ConfigureAwait(false)).OrderBy(w => w.StartedAt).ToList();

    /// <summary>Live workers that hold <paramref name="model"/> <paramref name="version"/> warm, fewest jobs in flight
    /// first: where a job for that model would start without a cold load.</summary>
    public async ValueTask<IReadOnlyList<WorkerStatus>> WhoHasWarmAsync(string model, string version, CancellationToken cancellationToken)
    {
        var workers = await ReadAsync(ModelKey(model, version)).ConfigureAwait(false);

        // The index can lag one heartbeat behind an eviction; the status itself is the truth.
        return workers
            .Where(w => w.WarmModels.Any(m => m.Model == model && m.Version == version))
            .OrderBy(w => w.InFlight)
            .ThenBy(w => w.StartedAt)
            .ToList();
    }

    private async ValueTask<List<WorkerStatus>> ReadAsync(RedisKey set)
    {
        var result = await EvaluateAsync(ListScript, [set], [_root + ":w:"]).ConfigureAwait(false);
        var values = (RedisResult[]?)result ?? [];
        var workers = new List<WorkerStatus>(values.Length);
        foreach (var value in values)
        {
            if (JsonSerializer.Deserialize((byte[])value!, RedisJson.Default.WorkerStatus) is { } status)
            {
                workers.Add(status);
            }
        }

        return workers;
    }

    public async ValueTask RecordColdStartAsync(ColdStart coldStart, CancellationToken cancellationToken)
    {
        var json = JsonSerializer.Serialize(coldStart, RedisJson.Default.ColdStart);
        await EvaluateAsync(RecordColdStartScript, [_root + ":coldstarts"], [json, IWorkerRegistry.ColdStartsKept]).ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyList<ColdStart>> ListColdStartsAsync(CancellationToken cancellationToken)
    {
        var values = await _unavailable.RunAsync(
            () => _redis.GetDatabase().ListRangeAsync(_root + ":coldstarts", 0, IWorkerRegistry.ColdStartsKept - 1)).ConfigureAwait(false);
        var coldStarts = new List<ColdStart>(values.Length);
        foreach (var value in values)
        {
            if (JsonSerializer.Deserialize((byte[])value!, RedisJson.Default.ColdStart) is { } coldStart)
            {
                coldStarts.Add(coldStart);
            }
        }

        return coldStarts;
    }

    private RedisKey StatusKey(string workerId) => _root + ":w:" + workerId;

    private RedisKey ModelsOfKey(string workerId) => _root + ":wm:" + workerId;

    private RedisKey ModelKey(string model, string version) => $"{_root}:m:{model}/{version}";

    private async ValueTask<RedisResult> EvaluateAsync(string script, RedisKey[] keys, RedisValue[] args)
    {
        return await _unavailable.RunAsync(() => _redis.GetDatabase().ScriptEvaluateAsync(script, keys, args)).ConfigureAwait(false);
    }
}
