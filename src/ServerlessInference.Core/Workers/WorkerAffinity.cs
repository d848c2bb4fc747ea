using Microsoft.Extensions.Logging;
using ServerlessInference.Jobs;
using ServerlessInference.Models;

namespace ServerlessInference.Workers;

/// <summary>One worker's side of affinity: the <see cref="JobPreference"/> it passes on every receive, and the fair
/// state it updates with what each receive returned.</summary>
/// <remarks>
/// <para>The registry and the model list are read at most once per <see cref="WorkerOptions.HeartbeatInterval"/> and
/// cached; a failed read keeps the last view (the worker goes on receiving). A worker whose heartbeat is older than two
/// heartbeat intervals counts for nothing (<see cref="AffinityRule.Build"/>).</para>
/// <para>With <see cref="WorkerOptions.Affinity"/> off the preference is <see cref="JobPreference.None"/> (FIFO).</para>
/// <para>Not thread-safe: one worker loop owns it.</para>
/// </remarks>
public sealed partial class WorkerAffinity
{
    private readonly string _selfId;
    private readonly WarmPool _pool;
    private readonly ModelCatalog _catalog;
    private readonly IWorkerRegistry _registry;
    private readonly WorkerOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly FairShare _fair = new();
    private IReadOnlyList<WorkerStatus> _workers = [];
    private IReadOnlyDictionary<string, ModelManifest> _manifests = new Dictionary<string, ModelManifest>(StringComparer.Ordinal);
    private long? _viewReadAt;

    public WorkerAffinity(
        string selfId, WarmPool pool, ModelCatalog catalog, IWorkerRegistry registry, WorkerOptions options, TimeProvider timeProvider, ILogger logger)
    {
        _selfId = selfId;
        _pool = pool;
        _catalog = catalog;
        _registry = registry;
        _options = options;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    /// <summary>The fair state (for tests and diagnostics).</summary>
    public FairShare Fair => _fair;

    /// <summary>The preference for the next receive.</summary>
    public async ValueTask<JobPreference> PreferenceAsync(CancellationToken cancellationToken)
    {
        if (!_options.Affinity)
        {
            return JobPreference.None;
        }

        await RefreshViewAsync(cancellationToken).ConfigureAwait(false);
        return AffinityRule.Build(
            _selfId,
            _fair.Order(WarmKeys()),
            _workers,
            _manifests,
            _timeProvider.GetUtcNow(),
            _options.HeartbeatInterval * 2,
            _options.AffinityWait) with
        {
            LoadWait = HasRoomForAnyModel() || VictimIsIdle() ? TimeSpan.Zero : _options.LoadWait,
        };
    }

    /// <summary>Whether the model a load would evict first has gone unused for the load wait: evicting it costs no model
    /// in demand, so a quiet worker loads at once.</summary>
    private bool VictimIsIdle() => _pool.NextVictimUnusedFor() is { } unused && unused >= _options.LoadWait;

    /// <summary>Whether the warm pool's free bytes hold the largest model's latest version, so that no load evicts.</summary>
    private bool HasRoomForAnyModel()
    {
        var counters = _pool.Counters;
        var largest = 0L;
        foreach (var manifest in _manifests.Values)
        {
            largest = Math.Max(largest, manifest.SizeBytes);
        }

        return counters.BudgetBytes - counters.UsedBytes >= largest;
    }

    /// <summary>Accounts what a receive made with <paramref name="preference"/> returned.</summary>
    public void Received(JobPreference preference, IReadOnlyList<JobLease> leases)
    {
        if (preference.IsNone || leases.Count == 0)
        {
            return;
        }

        var received = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var lease in leases)
        {
            var key = lease.Job.AffinityKey;
            received[key] = received.GetValueOrDefault(key) + 1;
        }

        _fair.Served(preference.Warm, received, WeightOf);
    }

    /// <summary>The affinity keys this worker holds warm: its warm pool's models, loading ones included (a load under way
    /// is about to be warm). Prefix keys (<c>model#prefix</c>, a cached KV prefix) join here once a worker keeps them.</summary>
    private HashSet<string> WarmKeys()
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var model in _pool.Snapshot())
        {
            keys.Add(model.Name);
        }

        // A generation model's cached prompt prefixes: jobs keyed model#prefix come here first.
        keys.UnionWith(_pool.HeldPrefixAffinityKeys());
        return keys;
    }

    private double WeightOf(string key) =>
        _manifests.TryGetValue(JobPreference.ModelOf(key), out var manifest) ? manifest.Weight : 1;

    private async ValueTask RefreshViewAsync(CancellationToken cancellationToken)
    {
        if (_viewReadAt is { } readAt && _timeProvider.GetElapsedTime(readAt) < _options.HeartbeatInterval)
        {
            return;
        }

        // Stamped before the reads: a failing registry is tried again after an interval, not on every receive.
        _viewReadAt = _timeProvider.GetTimestamp();
        try
        {
            _workers = await _registry.ListAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.RegistryUnread(_logger, ex, _selfId);
        }

        try
        {
            _manifests = AffinityRule.LatestByName(await _catalog.ListAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.ModelsUnread(_logger, ex, _selfId);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(60, LogLevel.Warning, "Worker {WorkerId} could not read the worker registry for affinity; it keeps its last view")]
        public static partial void RegistryUnread(ILogger logger, Exception exception, string workerId);

        [LoggerMessage(61, LogLevel.Warning, "Worker {WorkerId} could not list the models for affinity (weights, max_workers); it keeps its last view")]
        public static partial void ModelsUnread(ILogger logger, Exception exception, string workerId);
    }
}
