using System.Buffers;
using System.Globalization;
using Microsoft.Extensions.Options;
using ServerlessInference.Jobs;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

/// <summary>An <see cref="IResultStore"/> in Redis: one hash per job (<c>{prefix}job:{id}</c>) with a TTL, state
/// changes as Lua scripts, completions announced on one channel (<c>{prefix}results</c>), records of ended jobs bounded
/// in count and bytes through an index (RedisResultStore.Retention.cs).</summary>
/// <remarks>
/// <para>Transitions are atomic on the server: Queued|Running → Running, Queued → Cancelled, and publish only while
/// the job is not terminal, so the first result wins whichever process publishes it.</para>
/// <para>Waiting: each instance subscribes to the completion channel once, however many jobs it waits for, and
/// hands each message (a job id) to the local waiters of that job. A wait registers its waiter and makes sure the
/// subscription is live before it reads the record, so a result stored at any moment either shows in that read or
/// wakes the waiter.</para>
/// <para>Thread-safe; register one instance per process. Dispose it to drop its subscription.</para>
/// </remarks>
public sealed partial class RedisResultStore : IResultStore, IAsyncDisposable
{
    // Status numbers as stored; terminal ones are >= Succeeded (JobStatusExtensions.IsTerminal).
    private static readonly string s_statuses = string.Create(CultureInfo.InvariantCulture,
        $"local Queued, Running, Succeeded, Cancelled = {(int)JobStatus.Queued}, {(int)JobStatus.Running}, {(int)JobStatus.Succeeded}, {(int)JobStatus.Cancelled}\n");

    /// <summary>KEYS: record. ARGV: ttl ms, fields...</summary>
    private const string TrackScript = """
        redis.call('DEL', KEYS[1])
        redis.call('HSET', KEYS[1], unpack(ARGV, 2))
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        return 1
        """;

    /// <summary>KEYS: record. ARGV: started (UTC ticks).</summary>
    private static readonly string s_tryStartScript = s_statuses + """
        local s = tonumber(redis.call('HGET', KEYS[1], 'status'))
        if s == nil or s >= Succeeded then return 0 end
        redis.call('HSET', KEYS[1], 'status', Running, 'started', ARGV[1])
        return 1
        """;

    /// <summary>KEYS: record. ARGV: completed, error, ttl ms, channel, job id. Returns nil (unknown) or
    /// <c>{cancelled, fields}</c>.</summary>
    private static readonly string s_tryCancelScript = s_statuses + """
        local s = tonumber(redis.call('HGET', KEYS[1], 'status'))
        if s == nil then return false end
        local cancelled = 0
        if s == Queued then
          redis.call('HSET', KEYS[1], 'status', Cancelled, 'completed', ARGV[1], 'error', ARGV[2])
          redis.call('PEXPIRE', KEYS[1], ARGV[3])
          redis.call('PUBLISH', ARGV[4], ARGV[5])
          cancelled = 1
        end
        return {cancelled, redis.call('HGETALL', KEYS[1])}
        """;

    /// <summary>KEYS: record. ARGV: ttl ms, channel, job id, started (or empty), fields... Keeps a first terminal
    /// result and a known start time, except that a success replaces a record marked replaceable (a dead-letter or
    /// expiry decided while a slow worker still ran the job; IResultStore.PublishAsync): one conditional write.</summary>
    private static readonly string s_publishScript = s_statuses + """
        local s = tonumber(redis.call('HGET', KEYS[1], 'status'))
        if s ~= nil and s >= Succeeded then
          local succeeds = false
          for i = 5, #ARGV - 1, 2 do
            if ARGV[i] == 'status' then succeeds = tonumber(ARGV[i + 1]) == Succeeded end
          end
          if not succeeds or redis.call('HGET', KEYS[1], 'replaceable') ~= '1' then return 0 end
          redis.call('HDEL', KEYS[1], 'error', 'kind', 'replaceable')
        end
        if s == nil and ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'started', ARGV[4]) end
        redis.call('HSET', KEYS[1], unpack(ARGV, 5))
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        redis.call('PUBLISH', ARGV[2], ARGV[3])
        return 1
        """;

    private readonly IConnectionMultiplexer _redis;
    private readonly RedisOptions _redisOptions;
    private readonly TimeSpan _ttl;
    private readonly ResultStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly string _keyPrefix;
    private readonly RedisValue _channelName;
    private readonly RedisSubscription _completions;
    private readonly RedisUnavailable _unavailable;
    private readonly Dictionary<string, Waiter> _waiters = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public RedisResultStore(IConnectionMultiplexer redis, IOptions<RedisOptions> redisOptions, IOptions<ResultStoreOptions> options, TimeProvider timeProvider)
    {
        _redis = redis;
        _redisOptions = redisOptions.Value;
        _ttl = options.Value.Ttl;
        _options = options.Value;
        _time = timeProvider;
        _keyPrefix = _redisOptions.KeyPrefix + "job:";
        _channelName = _redisOptions.KeyPrefix + "results";
        _completions = new RedisSubscription(redis, RedisChannel.Literal(_redisOptions.KeyPrefix + "results"), (_, jobId) => OnCompleted(jobId));
        _unavailable = new RedisUnavailable("the result store", _redisOptions.UnavailableRetryAfterSeconds);
    }

    /// <summary>The completion channel (one subscription per instance).</summary>
    public string Channel => _channelName.ToString();

    /// <summary>Jobs this instance has waiters for now.</summary>
    internal int WaitingJobs
    {
        get
        {
            lock (_lock)
            {
                return _waiters.Count;
            }
        }
    }

    public async ValueTask TrackAsync(InferenceJob job, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var ttl = job.Deadline > now ? job.Deadline - now + _ttl : _ttl;
        RedisValue[] args =
        [
            Milliseconds(ttl),
            "id", job.Id,
            "model", job.Model,
            "version", job.Version,
            "status", (int)JobStatus.Queued,
            "submitted", job.SubmittedAt.UtcTicks,
        ];
        if (job.Tenant is not null)
        {
            args = [.. args, "tenant", job.Tenant];
        }

        await EvaluateAsync(TrackScript, Key(job.Id), args).ConfigureAwait(false);
    }

    public async ValueTask<bool> TryStartAsync(string jobId, CancellationToken cancellationToken) =>
        (long)await EvaluateAsync(s_tryStartScript, Key(jobId), [_time.GetUtcNow().UtcTicks]).ConfigureAwait(false) == 1;

    public async ValueTask<(bool Cancelled, JobRecord? Record)> TryCancelAsync(string jobId, CancellationToken cancellationToken)
    {
        var result = await EvaluateAsync(s_tryCancelScript, Key(jobId),
            [_time.GetUtcNow().UtcTicks, "cancelled by the client", Milliseconds(_ttl), _channelName, jobId]).ConfigureAwait(false);
        if (result.IsNull)
        {
            return (false, null);
        }

        var parts = (RedisResult[])result!;
        var record = Parse((RedisResult[])parts[1]!);
        var cancelled = (long)parts[0] == 1;
        if (cancelled)
        {
            await RetainAsync(jobId, RecordBytes(record, 0), _ttl).ConfigureAwait(false);
        }

        return (cancelled, record);
    }

    public async ValueTask PublishAsync(JobRecord result, CancellationToken cancellationToken)
    {
        if (!result.Status.IsTerminal())
        {
            throw new ArgumentException($"only terminal records are published, not {result.Status}", nameof(result));
        }

        var args = new List<RedisValue>(24)
        {
            Milliseconds(_ttl), _channelName, result.Id,
            result.StartedAt is { } started ? started.UtcTicks : RedisValue.EmptyString,
            "id", result.Id,
            "model", result.Model,
            "version", result.Version,
            "status", (int)result.Status,
            "submitted", result.SubmittedAt.UtcTicks,
            "completed", (result.CompletedAt ?? _time.GetUtcNow()).UtcTicks,
        };
        if (result.Error is not null)
        {
            args.Add("error");
            args.Add(result.Error);
        }

        if (result.ErrorKind is { } kind)
        {
            args.Add("kind");
            args.Add((int)kind);
        }

        if (result.ReplaceableBySuccess)
        {
            args.Add("replaceable");
            args.Add(1);
        }

        long responseBytes = 0;
        if (result.Response is not null)
        {
            var body = new ArrayBufferWriter<byte>();
            var headerLength = OipCodec.WriteResponse(body, result.Response, static _ => true);
            args.Add("response");
            args.Add(body.WrittenMemory);
            responseBytes = body.WrittenCount;
            args.Add("header");
            args.Add(headerLength is { } h ? h : RedisValue.EmptyString);
        }

        if ((long)await EvaluateAsync(s_publishScript, Key(result.Id), [.. args]).ConfigureAwait(false) == 1)
        {
            await RetainAsync(result.Id, RecordBytes(result, responseBytes), _ttl).ConfigureAwait(false);
        }
    }

    public async ValueTask<JobRecord?> GetAsync(string jobId, CancellationToken cancellationToken)
    {
        var entries = await _unavailable.RunAsync(() => _redis.GetDatabase().HashGetAllAsync(Key(jobId))).ConfigureAwait(false);

        return entries.Length == 0 ? null : Parse(entries.Select(e => (e.Name.ToString(), e.Value)));
    }

    public async ValueTask<JobRecord?> WaitAsync(string jobId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (timeout <= TimeSpan.Zero)
        {
            return await GetAsync(jobId, cancellationToken).ConfigureAwait(false);
        }

        // Register, subscribe, then read: a result published after the read wakes the waiter.
        var waiter = Register(jobId);
        try
        {
            try
            {
                await _completions.EnsureAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (RedisUnavailable.IsOutage(ex))
            {
                throw _unavailable.Wrap(ex);
            }

            var record = await GetAsync(jobId, cancellationToken).ConfigureAwait(false);
            if (record is null || record.Status.IsTerminal())
            {
                return record;
            }

            try
            {
                await waiter.Done.Task.WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Not done yet: the caller answers 202.
            }

            try
            {
                return await GetAsync(jobId, cancellationToken).ConfigureAwait(false);
            }
            catch (InferenceException ex) when (ex.Error == InferenceError.Unavailable)
            {
                // Redis went away while we waited: the job was accepted, so report what we last saw (202 + poll).
                return record;
            }
        }
        finally
        {
            Release(jobId, waiter);
        }
    }

    public ValueTask DisposeAsync() => _completions.DisposeAsync();

    private RedisKey Key(string jobId) => _keyPrefix + jobId;

    private async ValueTask<RedisResult> EvaluateAsync(string script, RedisKey key, RedisValue[] args)
    {
        return await _unavailable.RunAsync(() => _redis.GetDatabase().ScriptEvaluateAsync(script, [key], args)).ConfigureAwait(false);
    }

    private void OnCompleted(RedisValue jobId)
    {
        lock (_lock)
        {
            if (_waiters.TryGetValue(jobId.ToString(), out var waiter))
            {
                waiter.Done.TrySetResult();
            }
        }
    }

    private Waiter Register(string jobId)
    {
        lock (_lock)
        {
            if (!_waiters.TryGetValue(jobId, out var waiter))
            {
                waiter = new Waiter();
                _waiters[jobId] = waiter;
            }

            waiter.Count++;
            return waiter;
        }
    }

    private void Release(string jobId, Waiter waiter)
    {
        lock (_lock)
        {
            if (--waiter.Count == 0)
            {
                _waiters.Remove(jobId);
            }
        }
    }

    private static long Milliseconds(TimeSpan span) => Math.Max(1, (long)Math.Ceiling(span.TotalMilliseconds));

    private static JobRecord Parse(RedisResult[] flat)
    {
        var pairs = new List<(string, RedisValue)>(flat.Length / 2);
        for (var i = 0; i + 1 < flat.Length; i += 2)
        {
            pairs.Add((flat[i].ToString(), (RedisValue)flat[i + 1]));
        }

        return Parse(pairs);
    }

    private static JobRecord Parse(IEnumerable<(string Name, RedisValue Value)> fields)
    {
        var map = fields.ToDictionary(f => f.Name, f => f.Value, StringComparer.Ordinal);
        InferenceResponse? response = null;
        if (map.TryGetValue("response", out var body) && !body.IsNullOrEmpty)
        {
            var header = map.GetValueOrDefault("header");
            response = OipCodec.ParseResponse((byte[])body!, header.IsNullOrEmpty ? null : (int)header);
        }

        return new JobRecord
        {
            Id = map["id"].ToString(),
            Model = map["model"].ToString(),
            Version = map["version"].ToString(),
            Status = (JobStatus)(int)map["status"],
            SubmittedAt = Instant(map["submitted"])!.Value,
            Tenant = map.TryGetValue("tenant", out var tenant) ? tenant.ToString() : null,
            StartedAt = Instant(map.GetValueOrDefault("started")),
            CompletedAt = Instant(map.GetValueOrDefault("completed")),
            Error = map.TryGetValue("error", out var error) ? error.ToString() : null,
            ErrorKind = map.TryGetValue("kind", out var kind) && Enum.IsDefined((InferenceError)(int)kind) ? (InferenceError)(int)kind : null,
            Response = response,
            ReplaceableBySuccess = map.TryGetValue("replaceable", out var replaceable) && replaceable == 1,
        };
    }

    private static DateTimeOffset? Instant(RedisValue ticks) => ticks.IsNullOrEmpty ? null : new DateTimeOffset((long)ticks, TimeSpan.Zero);

    private sealed class Waiter
    {
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Count { get; set; }
    }
}
