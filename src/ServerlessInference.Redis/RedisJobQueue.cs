using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Jobs;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

/// <summary>An <see cref="IJobQueue"/> on Redis streams, one per affinity key (a partition), each read through one
/// consumer group: at-least-once delivery across processes, leases that survive a crashed worker, a dead-letter
/// stream, and a receive that chooses among partitions by the worker's <see cref="JobPreference"/>.</summary>
/// <remarks>
/// <para>Keys (all hash-tagged with <c>{queue}</c>, so one queue lives in one cluster slot), under the base
/// <c>{prefix}{{queue}}</c>: a partition's stream <c>...:q:{affinity key}</c>; the index of live partitions
/// <c>...:parts</c> (ZSET); the partitions with undelivered jobs <c>...:waiting</c> (ZSET, score = the enqueue time in
/// ms of the oldest, the time part of its stream id); the jobs queued or in flight <c>...:count</c> and per model
/// <c>...:models</c> (HASH); the reclaim cursors <c>...:reclaims</c> (HASH); dead letters <c>...:dead</c>; the byte
/// budget <c>...:bytes</c>; requests kept beside their entries <c>...:body:{job id}</c>. New jobs are announced on the
/// channel <c>...:new</c>. An enqueue creates its partition (stream, group, index entry) and the settle that empties one
/// removes it, each in its script, so they never race.</para>
/// <para>A lease is a pending entry (PEL) of this process's consumer; its expiry is the entry's idle time on the
/// server clock. Once a lease has been idle for <see cref="JobQueueOptions.LeaseDuration"/>, a receive finds it with
/// <c>XAUTOCLAIM</c> and puts the job back in its partition as a new entry, as an abandon does, so it is chosen by the
/// same rule as any waiting job. The delivery count is the PEL's counter plus the deliveries the job carried over
/// (<c>n</c>).</para>
/// <para>Waiting: StackExchange.Redis multiplexes one connection and does not support blocking commands
/// (<c>XREADGROUP BLOCK</c>), so this follows its documented pattern: every enqueue publishes on a channel, a waiting
/// receiver wakes on it and reads without blocking. It also re-reads every <see cref="RedisOptions.ReclaimInterval"/>,
/// which both reclaims expired leases and covers a notification lost while reconnecting.</para>
/// <para>A receive with a preference that finds only jobs kept for other workers learns from its script when the first
/// of them becomes overdue and wakes then.</para>
/// <para>Thread-safe; one instance per process. Dispose it to drop its subscription.</para>
/// </remarks>
public sealed partial class RedisJobQueue : IJobQueue, IAsyncDisposable
{

    private readonly IConnectionMultiplexer _redis;
    private readonly JobQueueOptions _options;
    private readonly RedisOptions _redisOptions;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _base;
    private readonly RedisKey _dead;
    private readonly RedisKey _parts;
    private readonly RedisKey _waiting;
    private readonly RedisKey _reclaims;
    private readonly RedisKey _models;
    private readonly RedisKey _count;
    private readonly RedisValue _channelName;
    private readonly RedisValue _group;
    private readonly RedisValue _consumer;
    private readonly RedisSubscription _notifications;
    private readonly RedisUnavailable _unavailable;
    private TaskCompletionSource _signal = NewSignal();
    private long _nextReclaim;
    private long _nextPrune;

    public RedisJobQueue(
        IConnectionMultiplexer redis,
        IOptions<RedisOptions> redisOptions,
        IOptions<JobQueueOptions> options,
        TimeProvider timeProvider,
        ILogger<RedisJobQueue>? logger = null)
    {
        _redis = redis;
        _redisOptions = redisOptions.Value;
        _options = options.Value;
        _time = timeProvider;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _base = $"{_redisOptions.KeyPrefix}{{{_redisOptions.QueueName}}}";
        _dead = _base + ":dead";
        _parts = _base + ":parts";
        _waiting = _base + ":waiting";
        _reclaims = _base + ":reclaims";
        _models = _base + ":models";
        _count = _base + ":count";
        _channelName = _base + ":new";
        _group = _redisOptions.ConsumerGroup;
        _consumer = _redisOptions.ConsumerName;
        _notifications = new RedisSubscription(redis, RedisChannel.Literal(_base + ":new"), (_, _) => Wake());
        _unavailable = new RedisUnavailable("the job queue", _redisOptions.UnavailableRetryAfterSeconds);
        _nextPrune = _time.GetTimestamp() + Ticks(TimeSpan.FromMinutes(1));
    }

    public int MaxDeliveryCount => _options.MaxDeliveryCount;

    /// <summary>The stream of the partition of <paramref name="affinityKey"/> (<see cref="InferenceJob.AffinityKey"/>),
    /// for tests and operators; it exists while the partition holds a job.</summary>
    public string PartitionStreamKey(string affinityKey) => PartitionStream(affinityKey).ToString();

    /// <summary>The index of live partitions (a ZSET of affinity keys).</summary>
    public string PartitionIndexKey => _parts.ToString();

    /// <summary>The dead-letter stream key.</summary>
    public string DeadLetterKey => _dead.ToString();

    public async ValueTask EnqueueAsync(InferenceJob job, CancellationToken cancellationToken)
    {
        var encoded = InferenceJobCodec.Encode(job, out var buffer);
        long bytes = encoded.Request.Length;
        CheckFitsAtAll(bytes);
        var inline = _redisOptions.InlineRequestMaxBytes == 0 || encoded.Request.Length < _redisOptions.InlineRequestMaxBytes;
        RedisKey bodyKey = inline ? default : BodyKey(job.Id);
        var affinityKey = job.AffinityKey;
        var stream = PartitionStream(affinityKey);
        RedisValue[] args =
        [
            _options.Capacity, job.ModelQueueCapacity is { } modelCapacity ? modelCapacity : RedisValue.EmptyString,
            affinityKey, job.Model, _group, _channelName, bytes, _options.MaxQueuedBytes,
            "id", encoded.Id,
            "model", encoded.Model,
            "version", encoded.Version,
            "submitted", encoded.SubmittedUtcTicks,
            "deadline", encoded.DeadlineUtcTicks,
            "header", encoded.HeaderLength is { } h ? h : RedisValue.EmptyString,
            inline ? "request" : "body", inline ? encoded.Request : (RedisValue)bodyKey.ToString(),
            .. encoded.PrefixKey is { } prefix ? (RedisValue[])["prefix", prefix] : [],
        ];
        if (encoded.TraceParent is not null)
        {
            args = [.. args, "traceparent", encoded.TraceParent, "tracestate", encoded.TraceState ?? ""];
        }

        RedisResult result;
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!inline)
            {
                // Stored first, so a worker that sees the entry finds its body. It outlives every delivery the job may
                // get; settling the job deletes it.
                var now = _time.GetUtcNow();
                var keep = (job.Deadline > now ? job.Deadline - now : TimeSpan.Zero)
                    + _options.LeaseDuration * (_options.MaxDeliveryCount + 1) + TimeSpan.FromMinutes(5);
                await Database.StringSetAsync(bodyKey, encoded.Request, keep).ConfigureAwait(false);
            }

            result = await Database.ScriptEvaluateAsync(EnqueueScript, [stream, _parts, _waiting, _models, _count, BytesCounterKey], args).ConfigureAwait(false);

            // The replies are in, so the request bytes have been written: the buffer may be reused. After a failure it
            // is left to the collector, as the client may still hold the bytes for a retry.
            buffer.Release();
            if ((long)result != 1 && !inline)
            {
                await Database.KeyDeleteAsync(bodyKey).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (RedisUnavailable.IsOutage(ex))
        {
            throw _unavailable.Wrap(ex);
        }

        if ((long)result == 0)
        {
            throw new InferenceException(InferenceError.QueueFull, $"the job queue is full ({_options.Capacity} jobs)")
            {
                RetryAfterSeconds = _options.RetryAfterSeconds,
            };
        }

        if ((long)result == -2)
        {
            throw new InferenceException(InferenceError.QueueFull, $"the job queue is full ({_options.MaxQueuedBytes} bytes of requests)")
            {
                RetryAfterSeconds = _options.RetryAfterSeconds,
            };
        }

        if ((long)result == -1)
        {
            throw new InferenceException(InferenceError.QueueFull,
                $"the queue of model '{job.Model}' is full (its max_queued is {job.ModelQueueCapacity} jobs queued or running)")
            {
                RetryAfterSeconds = _options.RetryAfterSeconds,
            };
        }

        // Receivers in this process need not wait for the pub/sub round trip.
        Wake();
    }

    /// <summary>The oldest jobs first, whatever their key (<see cref="JobPreference.None"/>).</summary>
    public ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, CancellationToken cancellationToken) =>
        ReceiveAsync(maxCount, maxWait, JobPreference.None, cancellationToken);

    public async ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, JobPreference preference, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        ArgumentNullException.ThrowIfNull(preference);
        var rule = RuleArguments(preference);
        var started = _time.GetTimestamp();
        try
        {
            await _notifications.EnsureAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();

                // Take the signal before reading: a job that arrives after the read completes it, so no wake-up is lost.
                var signal = Volatile.Read(ref _signal).Task;
                var (leases, untilOverdue) = await ReadAsync(maxCount, rule).ConfigureAwait(false);
                if (leases.Count > 0)
                {
                    return leases;
                }

                var remaining = maxWait - _time.GetElapsedTime(started);
                if (remaining <= TimeSpan.Zero)
                {
                    return [];
                }

                // Wake on a notification, or when a waiting job becomes due (JobPreference.WaitFor), or when it is time to
                // look for expired leases, or when the wait is over.
                var untilReclaim = TimeSpan.FromSeconds((double)(Interlocked.Read(ref _nextReclaim) - _time.GetTimestamp()) / _time.TimestampFrequency);
                if (untilOverdue is { } overdue && overdue < untilReclaim)
                {
                    untilReclaim = overdue;
                }

                var wake = untilReclaim < remaining ? (untilReclaim > TimeSpan.FromMilliseconds(1) ? untilReclaim : TimeSpan.FromMilliseconds(1)) : remaining;
                try
                {
                    await signal.WaitAsync(wake, _time, cancellationToken).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    // Poll again.
                }
            }
        }
        catch (Exception ex) when (RedisUnavailable.IsOutage(ex))
        {
            throw _unavailable.Wrap(ex);
        }
    }

    public async ValueTask<QueueDepth> GetDepthAsync(CancellationToken cancellationToken)
    {
        var result = (RedisResult[])(await _unavailable.RunAsync(() => Database.ScriptEvaluateAsync(DepthScript, [_parts, _models, _count], [_base, _group])).ConfigureAwait(false))!;
        var byModel = new Dictionary<string, ModelDepth>((result.Length - 2) / 3, StringComparer.Ordinal);
        for (var i = 2; i + 2 < result.Length; i += 3)
        {
            byModel[(string)result[i]!] = new ModelDepth((long)result[i + 1], (long)result[i + 2]);
        }

        return new QueueDepth((long)result[0], (long)result[1]) { ByModel = byModel };
    }

    /// <summary>Dead-lettered jobs, oldest first (up to <paramref name="count"/>).</summary>
    public async ValueTask<IReadOnlyList<DeadLetter>> ReadDeadLettersAsync(int count, CancellationToken cancellationToken)
    {
        var entries = await _unavailable.RunAsync(() => Database.StreamRangeAsync(_dead, count: count)).ConfigureAwait(false);

        var letters = new List<DeadLetter>(entries.Length);
        foreach (var entry in entries)
        {
            var fields = entry.Values.ToDictionary(v => (string)v.Name!, v => v.Value, StringComparer.Ordinal);
            letters.Add(new DeadLetter(
                ParseJob(fields, RedisValue.Null),
                (string?)fields.GetValueOrDefault("reason") ?? "",
                (int)fields.GetValueOrDefault("deliveries"),
                new DateTimeOffset((long)fields.GetValueOrDefault("at"), TimeSpan.Zero)));
        }

        return letters;
    }

    public ValueTask DisposeAsync() => _notifications.DisposeAsync();

    private IDatabase Database => _redis.GetDatabase();

    private void Wake() => Interlocked.Exchange(ref _signal, NewSignal()).TrySetResult();

    /// <summary>The selection rule's arguments for the receive script: the affinity wait in ms (-1: FIFO), the load wait
    /// in ms, then the warm keys, the keys warm elsewhere and the closed keys, each list preceded by its length.</summary>
    private static RedisValue[] RuleArguments(JobPreference preference)
    {
        if (preference.IsNone)
        {
            return [-1];
        }

        var args = new List<RedisValue>(5 + preference.Warm.Count + preference.WarmElsewhere.Count + preference.Closed.Count)
        {
            Math.Max(0L, (long)Math.Ceiling(preference.AffinityWait.TotalMilliseconds)),
            Math.Max(0L, (long)Math.Ceiling(preference.LoadWait.TotalMilliseconds)),
            preference.Warm.Count,
        };
        foreach (var key in preference.Warm)
        {
            args.Add(key);
        }

        args.Add(preference.WarmElsewhere.Count);
        foreach (var key in preference.WarmElsewhere)
        {
            args.Add(key);
        }

        args.Add(preference.Closed.Count);
        foreach (var key in preference.Closed)
        {
            args.Add(key);
        }

        return [.. args];
    }

    private async ValueTask<(List<JobLease> Leases, TimeSpan? UntilOverdue)> ReadAsync(int maxCount, RedisValue[] rule)
    {
        var now = _time.GetTimestamp();
        var reclaimDue = now >= Interlocked.Read(ref _nextReclaim);
        if (reclaimDue)
        {
            Interlocked.Exchange(ref _nextReclaim, now + Ticks(_redisOptions.ReclaimInterval));
        }

        var minIdle = reclaimDue ? Math.Max(1, (long)_options.LeaseDuration.TotalMilliseconds) : 0;
        RedisValue[] args = [_base, _group, _consumer, maxCount, minIdle, _channelName, JobLease.LeaseExpiredError, .. rule];
        var reply = (RedisResult[])(await Database.ScriptEvaluateAsync(ReceiveScript, [_parts, _waiting, _reclaims], args).ConfigureAwait(false))!;
        var due = (long)reply[0];
        TimeSpan? untilOverdue = due >= 0 ? TimeSpan.FromMilliseconds(due) : null;
        var entries = (RedisResult[]?)reply[1] ?? [];
        var delivered = new (string Key, RedisValue Id, long PelCount, Dictionary<string, RedisValue> Fields)[entries.Length];
        List<RedisKey>? bodyKeys = null;
        for (var e = 0; e < entries.Length; e++)
        {
            var parts = (RedisResult[])entries[e]!;
            var raw = (RedisResult[])parts[3]!;
            var fields = new Dictionary<string, RedisValue>(raw.Length / 2, StringComparer.Ordinal);
            for (var i = 0; i + 1 < raw.Length; i += 2)
            {
                fields[(string)raw[i]!] = (RedisValue)raw[i + 1];
            }

            delivered[e] = ((string)parts[0]!, (RedisValue)parts[1], (long)parts[2], fields);
            if (fields.TryGetValue("body", out var body))
            {
                (bodyKeys ??= []).Add((string)body!);
            }
        }

        // Requests kept beside their entries: one MGET for the whole batch (the keys share the stream's slot).
        var bodies = bodyKeys is null ? null : await Database.StringGetAsync([.. bodyKeys]).ConfigureAwait(false);
        var leases = new List<JobLease>(entries.Length);
        var b = 0;
        foreach (var (key, id, pelCount, fields) in delivered)
        {
            var stream = PartitionStream(key);
            RedisKey? bodyKey = null;
            var request = RedisValue.Null;
            if (fields.TryGetValue("body", out var body))
            {
                bodyKey = (string)body!;
                request = bodies![b++];
            }

            InferenceJob job;
            try
            {
                job = ParseJob(fields, request);
            }
            catch (Exception ex) when (ex is FormatException or InvalidCastException or InferenceException or KeyNotFoundException)
            {
                // An entry no worker can read would come back forever: set it aside at once.
                Log.UnreadableEntry(_logger, ex, id.ToString());
                await SettleLeavingAsync(DeadLetterScript, DeadLetterKeys(stream, bodyKey),
                    [_group, _consumer, id, RedisValue.EmptyString, _redisOptions.DeadLetterMaxLength, $"unreadable queue entry: {ex.Message}", pelCount,
                     _time.GetUtcNow().UtcTicks, _base, key, RequestBytes(fields, request)]).ConfigureAwait(false);
                continue;
            }

            var prior = fields.TryGetValue("n", out var n) ? (int)n : 0;
            var error = fields.TryGetValue("err", out var err) ? (string?)err : null;
            leases.Add(new Lease(this, stream, key, id, pelCount, job, prior + (int)pelCount, error ?? (pelCount > 1 ? JobLease.LeaseExpiredError : null), bodyKey, RequestBytes(fields, request)));
        }

        if (reclaimDue && now >= Interlocked.Read(ref _nextPrune))
        {
            Interlocked.Exchange(ref _nextPrune, now + Ticks(TimeSpan.FromMinutes(10)));
            await PruneConsumersAsync().ConfigureAwait(false);
        }

        return (leases, untilOverdue);
    }

    /// <summary>The bytes an entry's request holds of the budget: its length as enqueued (inline or kept beside).</summary>
    private static long RequestBytes(Dictionary<string, RedisValue> fields, RedisValue body) =>
        fields.TryGetValue("request", out var inline) ? inline.Length() : body.IsNull ? 0 : body.Length();

    /// <summary>Reads a stream entry's job; <paramref name="body"/> is the request kept beside the entry, if any.</summary>
    private static InferenceJob ParseJob(Dictionary<string, RedisValue> fields, RedisValue body)
    {
        var header = fields["header"];
        if (fields.TryGetValue("request", out var inline))
        {
            // Inline, or a dead letter that took its request along.
            body = inline;
        }
        else if (body.IsNull)
        {
            throw new KeyNotFoundException($"the request body {(string?)fields.GetValueOrDefault("body")} is missing (expired or deleted)");
        }

        return InferenceJobCodec.Decode(new EncodedJob(
            (string)fields["id"]!,
            (string)fields["model"]!,
            (string)fields["version"]!,
            (long)fields["submitted"],
            (long)fields["deadline"],
            header.IsNullOrEmpty ? null : (int)header,
            (byte[])body!,
            fields.TryGetValue("prefix", out var prefix) ? (string?)prefix : null,
            fields.TryGetValue("traceparent", out var traceParent) ? (string?)traceParent : null,
            fields.TryGetValue("tracestate", out var traceState) && !traceState.IsNullOrEmpty ? (string?)traceState : null));
    }

    private RedisKey BodyKey(string jobId) => (RedisKey)(_base + ":body:" + jobId);

    /// <summary>The stream of one partition (the scripts build the same name: base, <c>:q:</c>, affinity key).</summary>
    private RedisKey PartitionStream(string affinityKey) => (RedisKey)(_base + ":q:" + affinityKey);

    private RedisKey[] DeadLetterKeys(RedisKey stream, RedisKey? bodyKey) => bodyKey is { } key ? [stream, _dead, key] : [stream, _dead];

    /// <summary>Deletes consumers of processes that are gone: nothing pending and silent for a long time. A live
    /// consumer polls at least every <see cref="RedisOptions.ReclaimInterval"/>, and one deleted by mistake is
    /// recreated by its next read.</summary>
    private async ValueTask PruneConsumersAsync()
    {
        try
        {
            var silentFor = Math.Max(_options.LeaseDuration.TotalMilliseconds * 10, TimeSpan.FromMinutes(30).TotalMilliseconds);
            foreach (var key in await Database.SortedSetRangeByRankAsync(_parts).ConfigureAwait(false))
            {
                var stream = PartitionStream((string)key!);
                foreach (var consumer in await Database.StreamConsumerInfoAsync(stream, _group).ConfigureAwait(false))
                {
                    if (consumer.PendingMessageCount == 0 && consumer.IdleTimeInMilliseconds > silentFor && consumer.Name != _consumer)
                    {
                        await Database.StreamDeleteConsumerAsync(stream, _group, consumer.Name).ConfigureAwait(false);
                    }
                }
            }
        }
        catch (Exception ex) when (ex is RedisException)
        {
            Log.PruneFailed(_logger, ex);
        }
    }

    private async ValueTask SettleAsync(string script, RedisKey[] keys, RedisValue[] args)
    {
        try
        {
            await Database.ScriptEvaluateAsync(script, keys, args).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOGROUP", StringComparison.Ordinal))
        {
            // The stream was lost with its group (a Redis without persistence restarted): the lease is gone too.
        }
        catch (Exception ex) when (RedisUnavailable.IsOutage(ex))
        {
            throw _unavailable.Wrap(ex);
        }
    }

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A delivery: the entry id and the PEL delivery count it was handed out with, which every settle
    /// checks so that a stale lease (its job reclaimed by another consumer meanwhile) does nothing.</summary>
    private sealed class Lease(RedisJobQueue queue, RedisKey stream, string affinityKey, RedisValue entryId, long pelCount, InferenceJob job, int deliveryCount,
        string? lastError, RedisKey? bodyKey, long bytes)
        : JobLease
    {
        public override InferenceJob Job => job;

        public override int DeliveryCount => deliveryCount;

        public override string? LastError => lastError;

        public override ValueTask CompleteAsync(CancellationToken cancellationToken) =>
            queue.SettleLeavingAsync(CompleteScript, bodyKey is { } key ? [stream, key] : [stream],
                [queue._group, queue._consumer, entryId, pelCount, queue._base, affinityKey, bytes]);

        public override ValueTask AbandonAsync(string? error, CancellationToken cancellationToken) =>
            queue.SettleAsync(AbandonScript, [stream, queue._waiting],
                [queue._group, queue._consumer, entryId, pelCount, deliveryCount, error ?? lastError ?? "", queue._channelName, affinityKey]);

        public override ValueTask DeadLetterAsync(string reason, CancellationToken cancellationToken) =>
            queue.SettleLeavingAsync(DeadLetterScript, queue.DeadLetterKeys(stream, bodyKey),
                [queue._group, queue._consumer, entryId, pelCount, queue._redisOptions.DeadLetterMaxLength, reason, deliveryCount,
                 queue._time.GetUtcNow().UtcTicks, queue._base, affinityKey, bytes]);

        public override ValueTask RenewAsync(CancellationToken cancellationToken) =>
            queue.SettleAsync(RenewScript, [stream], [queue._group, queue._consumer, entryId, pelCount]);

        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{entryId} (delivery {deliveryCount})");
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Queue entry {EntryId} cannot be read; it was dead-lettered")]
        public static partial void UnreadableEntry(ILogger logger, Exception exception, string entryId);

        [LoggerMessage(2, LogLevel.Warning, "Pruning the job stream's departed consumers failed")]
        public static partial void PruneFailed(ILogger logger, Exception exception);

    }
}
