using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using ServerlessInference.Streaming;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

/// <summary>An <see cref="IJobStreams"/> on Redis: one stream per job (<c>{prefix}stream:{job}</c>) whose entry ids are
/// the sequences (<c>{sequence + 1}-0</c>: Redis refuses <c>0-0</c>), appends announced on the job's channel (the same
/// name as its key).</summary>
/// <remarks>
/// <para>Appending is one Lua script, so a batch is atomic across processes: it skips the sequences already stored
/// (the stream's last id says which), refuses a gap, anything after the final event and a token past
/// <see cref="JobStreamOptions.MaxEvents"/>, then <c>XADD</c>s the rest, restarts the key's TTL (<c>PEXPIRE</c>) and
/// publishes the job id. Fields: <c>x</c> text, <c>t</c> token id, <c>f</c> finish reason, <c>e</c> error.</para>
/// <para>Following: StackExchange.Redis multiplexes one connection and does not support blocking commands
/// (<c>XREAD BLOCK</c>), so a follower reads without blocking (<c>XRANGE</c> from the next sequence), and waits for
/// the job's pub/sub message, or <see cref="RedisOptions.StreamPollInterval"/>, which covers a message lost while
/// reconnecting. The followers of one job in a process share one subscription, made when the first starts and
/// dropped when the last ends; an append in this process wakes them without the round trip.</para>
/// <para>Thread-safe; one instance per process.</para>
/// </remarks>
public sealed class RedisJobStreams : IJobStreams
{
    /// <summary>KEYS: stream. ARGV: ttl ms, max events, channel, job id, first sequence, count, then per event: token,
    /// text, finish, error ('' for none). Returns {code (0 ok, 1 gap, 2 ended, 3 full), appended, last, ended}.</summary>
    private const string AppendScript = """
        local last, ended = -1, 0
        local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
        if top then
          last = tonumber(string.match(top[1], '^%d+')) - 1
          local f = top[2]
          for i = 1, #f, 2 do if f[i] == 'f' then ended = 1 end end
        end
        local first, n = tonumber(ARGV[5]), tonumber(ARGV[6])
        if n == 0 then return {0, 0, last, ended} end
        if first > last + 1 then return {1, 0, last, ended} end
        local skip = last + 1 - first
        if skip >= n then return {0, 0, last, ended} end
        if ended == 1 then return {2, 0, last, ended} end
        local lastSeq = first + n - 1
        local final = ARGV[7 + (n - 1) * 4 + 2] ~= ''
        local lastToken = lastSeq
        if final then lastToken = lastSeq - 1 end
        if lastToken >= tonumber(ARGV[2]) then return {3, 0, last, ended} end
        for i = skip, n - 1 do
          local b = 7 + i * 4
          local fields = {'x', ARGV[b + 1]}
          if ARGV[b] ~= '' then table.insert(fields, 't'); table.insert(fields, ARGV[b]) end
          if ARGV[b + 2] ~= '' then table.insert(fields, 'f'); table.insert(fields, ARGV[b + 2]) end
          if ARGV[b + 3] ~= '' then table.insert(fields, 'e'); table.insert(fields, ARGV[b + 3]) end
          redis.call('XADD', KEYS[1], string.format('%d-0', first + i + 1), unpack(fields))
        end
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        if final then ended = 1 end
        return {0, n - skip, lastSeq, ended}
        """;

    /// <summary>Entries read per round trip.</summary>
    private const int PageSize = 1024;

    private readonly IConnectionMultiplexer _redis;
    private readonly JobStreamOptions _options;
    private readonly TimeSpan _pollInterval;
    private readonly TimeProvider _time;
    private readonly string _keyPrefix;
    private readonly RedisUnavailable _unavailable;
    private readonly Dictionary<string, Follow> _follows = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public RedisJobStreams(IConnectionMultiplexer redis, IOptions<RedisOptions> redisOptions, IOptions<JobStreamOptions> options, TimeProvider timeProvider)
    {
        _redis = redis;
        _options = options.Value;
        _pollInterval = redisOptions.Value.StreamPollInterval;
        _time = timeProvider;
        _keyPrefix = redisOptions.Value.KeyPrefix + "stream:";
        _unavailable = new RedisUnavailable("the token stream", redisOptions.Value.UnavailableRetryAfterSeconds);
    }

    /// <summary>Jobs this instance has followers (and so a subscription) for now.</summary>
    internal int FollowedJobs
    {
        get
        {
            lock (_lock)
            {
                return _follows.Count;
            }
        }
    }

    /// <summary>The stream key (and channel) of <paramref name="jobId"/>.</summary>
    public string Key(string jobId) => _keyPrefix + jobId;

    public async ValueTask<JobStreamAppend> AppendAsync(string jobId, IReadOnlyList<JobStreamEvent> events, CancellationToken cancellationToken)
    {
        JobStreamRules.ValidateBatch(jobId, events);
        cancellationToken.ThrowIfCancellationRequested();
        var key = Key(jobId);
        var args = new RedisValue[6 + events.Count * 4];
        args[0] = Math.Max(1, (long)Math.Ceiling(_options.Ttl.TotalMilliseconds));
        args[1] = _options.MaxEvents;
        args[2] = key;
        args[3] = jobId;
        args[4] = events.Count == 0 ? 0 : events[0].Sequence;
        args[5] = events.Count;
        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i];
            var b = 6 + i * 4;
            args[b] = e.TokenId is { } token ? token : RedisValue.EmptyString;
            args[b + 1] = e.Text;
            args[b + 2] = e.Finish is { } finish ? FinishName(finish) : RedisValue.EmptyString;
            args[b + 3] = e.Error ?? RedisValue.EmptyString;
        }

        var reply = (RedisResult[])(await _unavailable.RunAsync(() => _redis.GetDatabase().ScriptEvaluateAsync(AppendScript, [key], args)).ConfigureAwait(false))!;
        var (code, appended, last, ended) = ((int)reply[0], (int)reply[1], (long)reply[2], (int)reply[3] == 1);
        switch (code)
        {
            case 1: throw JobStreamException.Gap(jobId, last, events[0].Sequence);
            case 2: throw JobStreamException.Ended(jobId, last);
            case 3: throw JobStreamException.Full(jobId, last, _options.MaxEvents);
        }

        if (appended > 0)
        {
            // Followers in this process need not wait for the pub/sub round trip.
            Wake(jobId);
        }

        return new JobStreamAppend(appended, last, ended);
    }

    public async ValueTask<IReadOnlyList<JobStreamEvent>> ReadAsync(string jobId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(jobId);
        var events = new List<JobStreamEvent>();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var page = await ReadFromAsync(Key(jobId), events.Count).ConfigureAwait(false);
            events.AddRange(page);
            if (page.Count < PageSize)
            {
                return events;
            }
        }
    }

    public async IAsyncEnumerable<JobStreamEvent> FollowAsync(string jobId, long afterSequence, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(jobId);
        ArgumentOutOfRangeException.ThrowIfLessThan(afterSequence, -1);
        var key = Key(jobId);
        var follow = Register(jobId);
        try
        {
            await _unavailable.RunAsync(() => follow.Subscription.EnsureAsync().WaitAsync(cancellationToken)).ConfigureAwait(false);
            var next = afterSequence + 1;
            var checkedEnd = false;
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();

                // Taken before the read: an append after it completes this signal, so no wake-up is lost.
                var signal = follow.Signal;
                var page = await ReadFromAsync(key, next).ConfigureAwait(false);
                foreach (var e in page)
                {
                    yield return e;
                    next = e.Sequence + 1;
                    if (e.IsFinal)
                    {
                        yield break;
                    }
                }

                if (page.Count > 0)
                {
                    continue;
                }

                // Nothing at or after next: a stream that has already ended ended before it (a Last-Event-ID at or past
                // the final event). Looked at once: a stream not ended now ends later with an event at or after next.
                if (!checkedEnd && next > 0)
                {
                    checkedEnd = true;
                    var final = await FinalSequenceAsync(key).ConfigureAwait(false);
                    if (final < next)
                    {
                        yield break;
                    }

                    if (final is not null)
                    {
                        // It ended just after the read: read the rest.
                        continue;
                    }
                }

                try
                {
                    await signal.WaitAsync(_pollInterval, _time, cancellationToken).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    // Read again: a notification may have been lost while the connection was re-made.
                }
            }
        }
        finally
        {
            await ReleaseAsync(jobId, follow).ConfigureAwait(false);
        }
    }

    private async Task<List<JobStreamEvent>> ReadFromAsync(RedisKey key, long sequence)
    {
        var entries = await _unavailable.RunAsync(() => _redis.GetDatabase().StreamRangeAsync(key, EntryId(sequence), "+", PageSize)).ConfigureAwait(false);
        var events = new List<JobStreamEvent>(entries.Length);
        foreach (var entry in entries)
        {
            events.Add(Parse(entry));
        }

        return events;
    }

    /// <summary>The sequence of the stream's final event, or null while it has none.</summary>
    private async Task<long?> FinalSequenceAsync(RedisKey key)
    {
        var top = await _unavailable.RunAsync(() => _redis.GetDatabase().StreamRangeAsync(key, "-", "+", 1, Order.Descending)).ConfigureAwait(false);
        return top.Length == 1 && Parse(top[0]) is { IsFinal: true } final ? final.Sequence : null;
    }

    private static string EntryId(long sequence) => string.Create(CultureInfo.InvariantCulture, $"{sequence + 1}-0");

    private static JobStreamEvent Parse(StreamEntry entry)
    {
        var id = entry.Id.ToString();
        var sequence = long.Parse(id.AsSpan(0, id.IndexOf('-', StringComparison.Ordinal)), NumberStyles.None, CultureInfo.InvariantCulture) - 1;
        int? token = null;
        var text = "";
        FinishReason? finish = null;
        string? error = null;
        foreach (var field in entry.Values)
        {
            switch ((string?)field.Name)
            {
                case "x": text = (string?)field.Value ?? ""; break;
                case "t": token = (int)field.Value; break;
                case "f": finish = ParseFinish((string?)field.Value); break;
                case "e": error = (string?)field.Value; break;
            }
        }

        return new JobStreamEvent(sequence, token, text, finish, error);
    }

    private static string FinishName(FinishReason finish) => finish switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        FinishReason.Eos => "eos",
        FinishReason.Cancelled => "cancelled",
        FinishReason.Error => "error",
        _ => throw new ArgumentOutOfRangeException(nameof(finish), finish, null),
    };

    // An unknown name (written by a newer version) still ends the stream.
    private static FinishReason ParseFinish(string? name) => name switch
    {
        "stop" => FinishReason.Stop,
        "length" => FinishReason.Length,
        "eos" => FinishReason.Eos,
        "cancelled" => FinishReason.Cancelled,
        _ => FinishReason.Error,
    };

    private Follow Register(string jobId)
    {
        lock (_lock)
        {
            if (!_follows.TryGetValue(jobId, out var follow))
            {
                follow = new Follow();
                follow.Subscription = new RedisSubscription(_redis, RedisChannel.Literal(Key(jobId)), (_, _) => follow.Fire());
                _follows[jobId] = follow;
            }

            follow.Followers++;
            return follow;
        }
    }

    private async ValueTask ReleaseAsync(string jobId, Follow follow)
    {
        lock (_lock)
        {
            if (--follow.Followers > 0)
            {
                return;
            }

            _follows.Remove(jobId);
        }

        await follow.Subscription.DisposeAsync().ConfigureAwait(false);
    }

    private void Wake(string jobId)
    {
        lock (_lock)
        {
            if (_follows.TryGetValue(jobId, out var follow))
            {
                follow.Fire();
            }
        }
    }

    /// <summary>This process's followers of one job: their subscription and the signal an append completes.</summary>
    private sealed class Follow
    {
        private TaskCompletionSource _signal = NewSignal();

        public RedisSubscription Subscription { get; set; } = null!;

        /// <summary>Guarded by the instance's lock.</summary>
        public int Followers { get; set; }

        public Task Signal => Volatile.Read(ref _signal).Task;

        /// <summary>Wakes the followers waiting now; the next look takes a new signal. Any thread.</summary>
        public void Fire() => Interlocked.Exchange(ref _signal, NewSignal()).TrySetResult();

        private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
