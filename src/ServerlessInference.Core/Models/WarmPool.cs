using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Models;

/// <summary>Loaded models kept warm under a byte budget.</summary>
/// <remarks>
/// <para>One load per model at a time: concurrent callers await the same load. Idle models (no lease out) are evicted
/// least-recently-used first when a load needs room; a model with a lease out is never evicted. When every model
/// in the way is busy the load goes ahead over budget and the pool shrinks back as leases are returned.</para>
/// <para>Thread-safe. Dispose the lease from <see cref="AcquireAsync"/> when the batch is done.</para>
/// </remarks>
public sealed partial class WarmPool : IDisposable
{
    private readonly IInferenceEngine _engine;
    private readonly WeightsCache _weights;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<WarmPool> _logger;
    private readonly long _budget;
    private readonly Telemetry.InferenceMetrics? _metrics;
    private readonly ModelChurn _churn;
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private long _usedBytes;
    private long _hits;
    private long _misses;
    private long _loads;
    private long _loadFailures;
    private long _evictions;
    private long _loadTicks;
    private bool _disposed;

    /// <param name="metrics">When given, its generation gauges (running sequences, KV bytes) read this pool's models, and
    /// each load and eviction counts in <c>inference_model_loads</c> / <c>inference_model_evictions</c>.</param>
    public WarmPool(IInferenceEngine engine, WeightsCache weights, IOptions<WarmPoolOptions> options, TimeProvider timeProvider, ILogger<WarmPool> logger,
        Telemetry.InferenceMetrics? metrics = null)
    {
        metrics?.ObserveGeneration(GenerationModels);
        _metrics = metrics;
        _churn = new ModelChurn(timeProvider);
        _engine = engine;
        _weights = weights;
        _timeProvider = timeProvider;
        _logger = logger;
        _budget = options.Value.BudgetBytes;
    }

    public long BudgetBytes => _budget;

    public string ExecutionProvider => _engine.ExecutionProvider;

    /// <summary>Returns a lease on the loaded model, loading it (and evicting idle models) when needed.</summary>
    /// <exception cref="InferenceException">The model cannot fit the budget or fails to load.</exception>
    public async ValueTask<WarmModelLease> AcquireAsync(ModelManifest manifest, CancellationToken cancellationToken)
    {
        if (manifest.SizeBytes > _budget)
        {
            throw new InferenceException(
                InferenceError.ModelFailure,
                $"model '{manifest.Key}' needs {manifest.SizeBytes} bytes but the warm pool budget is {_budget} (Inference:WarmPool:BudgetBytes)");
        }

        Entry entry;
        bool owner = false;
        bool waited;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_entries.TryGetValue(manifest.Key, out var existing) && existing.Manifest.Sha256 == manifest.Sha256)
            {
                entry = existing;
                _hits++;
            }
            else
            {
                if (existing is not null)
                {
                    // A new upload replaced the weights of this version: retire the old entry once idle.
                    existing.Retired = true;
                    _entries.Remove(manifest.Key);
                    if (existing.Leases == 0)
                    {
                        DropLocked(existing);
                    }
                }

                entry = new Entry(manifest);
                _entries.Add(manifest.Key, entry);
                _usedBytes += manifest.SizeBytes;
                _misses++;
                _loads++;
                _churn.Loaded(manifest.Name);
                _metrics?.ModelLoaded(manifest.Name);
                owner = true;
                EvictIdleLocked(except: entry);
            }

            entry.Leases++;
            entry.LastUsed = _timeProvider.GetTimestamp();
            waited = !entry.Load.IsCompleted;
        }

        if (owner)
        {
            _ = LoadIntoAsync(entry);
        }

        try
        {
            var model = await entry.Load.WaitAsync(cancellationToken).ConfigureAwait(false);
            return new WarmModelLease(this, entry, model, waited ? entry.Times : null);
        }
        catch
        {
            Release(entry);
            throw;
        }
    }

    private async Task LoadIntoAsync(Entry entry)
    {
        try
        {
            entry.Loading.SetResult(await LoadAsync(entry).ConfigureAwait(false));
        }
        catch (Exception ex)
        {
            entry.Loading.SetException(ex);
        }
    }

    private async Task<ILoadedModel> LoadAsync(Entry entry)
    {
        var started = _timeProvider.GetTimestamp();
        try
        {
            // Not tied to the first caller's token: other callers may be waiting on this load.
            var path = await _weights.GetLocalPathAsync(entry.Manifest, CancellationToken.None).ConfigureAwait(false);
            var weightsReadyAt = _timeProvider.GetUtcNow();
            var model = await _engine.LoadAsync(entry.Manifest, path, CancellationToken.None).ConfigureAwait(false);
            entry.Times = new ModelLoadTimes(weightsReadyAt, _timeProvider.GetUtcNow());
            var elapsed = _timeProvider.GetElapsedTime(started);
            lock (_lock)
            {
                _loadTicks += elapsed.Ticks;
                // The engine may know the real size better than the manifest.
                _usedBytes += model.SizeBytes - entry.Bytes;
                entry.Bytes = model.SizeBytes;
            }

            Log.Loaded(_logger, entry.Manifest.Key, model.SizeBytes, elapsed.TotalMilliseconds, _engine.ExecutionProvider);
            return model;
        }
        catch (Exception ex)
        {
            lock (_lock)
            {
                _loadFailures++;
                entry.Failed = true;
                if (_entries.TryGetValue(entry.Manifest.Key, out var current) && current == entry)
                {
                    _entries.Remove(entry.Manifest.Key);
                }

                _usedBytes -= entry.Bytes;
                entry.Bytes = 0;
            }

            Log.LoadFailed(_logger, ex, entry.Manifest.Key);
            if (ex is InferenceException)
            {
                throw;
            }

            throw new InferenceException(InferenceError.ModelFailure, $"model '{entry.Manifest.Key}' failed to load: {ex.Message}", ex);
        }
    }

    internal void Release(Entry entry)
    {
        lock (_lock)
        {
            entry.Leases--;
            entry.LastUsed = _timeProvider.GetTimestamp();
            if (entry.Leases == 0 && (entry.Retired || _disposed))
            {
                DropLocked(entry);
            }
            else if (_usedBytes > _budget)
            {
                EvictIdleLocked(except: null);
            }
        }
    }

    /// <summary>How long the model a load would evict first (the least recently used idle one) has gone unused; null
    /// when no loaded model is idle.</summary>
    public TimeSpan? NextVictimUnusedFor()
    {
        lock (_lock)
        {
            return NextVictimLocked(except: null) is { } victim ? _timeProvider.GetElapsedTime(victim.LastUsed) : null;
        }
    }

    /// <summary>The least recently used loaded model that no lease holds, other than <paramref name="except"/>.</summary>
    private Entry? NextVictimLocked(Entry? except)
    {
        Entry? victim = null;
        foreach (var candidate in _entries.Values)
        {
            if (candidate != except && candidate.Leases == 0 && candidate.Load is { IsCompletedSuccessfully: true }
                && (victim is null || candidate.LastUsed < victim.LastUsed))
            {
                victim = candidate;
            }
        }

        return victim;
    }

    private void EvictIdleLocked(Entry? except)
    {
        while (_usedBytes > _budget)
        {
            var victim = NextVictimLocked(except);
            if (victim is null)
            {
                if (except is not null)
                {
                    Log.OverBudget(_logger, except.Manifest.Key, _usedBytes, _budget);
                }

                return;
            }

            _entries.Remove(victim.Manifest.Key);
            _evictions++;
            _churn.Evicted(victim.Manifest.Name);
            _metrics?.ModelEvicted(victim.Manifest.Name);
            Log.Evicted(_logger, victim.Manifest.Key, victim.Bytes);
            DropLocked(victim);
        }
    }

    private void DropLocked(Entry entry)
    {
        if (entry.Dropped)
        {
            return;
        }

        entry.Dropped = true;
        if (!entry.Failed)
        {
            _usedBytes -= entry.Bytes;
        }

        if (entry.Load is { IsCompletedSuccessfully: true } load)
        {
            load.Result.Dispose();
        }
    }

    /// <summary>Models in the pool now, most recently used first.</summary>
    public IReadOnlyList<WarmModelInfo> Snapshot()
    {
        lock (_lock)
        {
            return _entries.Values
                .OrderByDescending(e => e.LastUsed)
                .Select(e => new WarmModelInfo(
                    e.Manifest.Name,
                    e.Manifest.Version,
                    e.Bytes,
                    e.Leases,
                    e.Load is { IsCompletedSuccessfully: true } ? "ready" : "loading"))
                .ToList();
        }
    }

    /// <summary>Models this pool loaded or evicted in the last <see cref="Workers.ModelActivity.Window"/>, by name (a load
    /// counts when it starts, like <see cref="WarmPoolCounters.Loads"/>; a failed load counts too).</summary>
    public IReadOnlyList<Workers.ModelActivity> RecentActivity()
    {
        lock (_lock)
        {
            return _churn.Snapshot();
        }
    }

    /// <summary>The text-generation models loaded now, with their scheduler counters (for metrics).</summary>
    public IReadOnlyList<(string Model, Generation.GenerationCounters Counters)> GenerationModels()
    {
        lock (_lock)
        {
            return _entries.Values
                .Where(e => e.Load is { IsCompletedSuccessfully: true } && e.Load.Result is Generation.ITextGenerationModel)
                .Select(e => (e.Manifest.Name, ((Generation.ITextGenerationModel)e.Load.Result).Counters))
                .ToList();
        }
    }

    /// <summary>The affinity keys (<c>model#prefix</c>, <see cref="Jobs.InferenceJob.AffinityKey"/>) of the prompt
    /// prefixes whose first block the loaded models' prefix caches hold (<see cref="Generation.IPrefixCacheView"/>): what
    /// a worker lists in <see cref="Jobs.JobPreference.Warm"/> beside its models' names. Thread-safe.</summary>
    public IReadOnlyList<string> HeldPrefixAffinityKeys()
    {
        List<(string Model, Generation.IPrefixCacheView View)> views;
        lock (_lock)
        {
            views = [.. _entries.Values
                .Where(e => e.Load is { IsCompletedSuccessfully: true } && e.Load.Result is Generation.IPrefixCacheView)
                .Select(e => (e.Manifest.Name, (Generation.IPrefixCacheView)e.Load.Result))];
        }

        return [.. views.SelectMany(v => v.View.HeldPrefixKeys.Select(key => $"{v.Model}#{key}"))];
    }

    public WarmPoolCounters Counters
    {
        get
        {
            lock (_lock)
            {
                return new WarmPoolCounters(_hits, _misses, _loads, _loadFailures, _evictions, TimeSpan.FromTicks(_loadTicks), _usedBytes, _budget);
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            foreach (var entry in _entries.Values.Where(e => e.Leases == 0).ToList())
            {
                _entries.Remove(entry.Manifest.Key);
                DropLocked(entry);
            }
        }
    }

    internal sealed class Entry(ModelManifest manifest)
    {
        public ModelManifest Manifest { get; } = manifest;
        public long Bytes { get; set; } = manifest.SizeBytes;
        public TaskCompletionSource<ILoadedModel> Loading { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Task<ILoadedModel> Load => Loading.Task;
        public int Leases { get; set; }
        public long LastUsed { get; set; }
        public bool Retired { get; set; }
        public bool Failed { get; set; }
        public bool Dropped { get; set; }
        public ModelLoadTimes? Times { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Loaded {Model} ({Bytes} bytes) in {Milliseconds:F0} ms on {Provider}")]
        public static partial void Loaded(ILogger logger, string model, long bytes, double milliseconds, string provider);

        [LoggerMessage(2, LogLevel.Error, "Loading {Model} failed")]
        public static partial void LoadFailed(ILogger logger, Exception exception, string model);

        [LoggerMessage(3, LogLevel.Information, "Evicted {Model} ({Bytes} bytes) from the warm pool")]
        public static partial void Evicted(ILogger logger, string model, long bytes);

        [LoggerMessage(4, LogLevel.Warning, "Loading {Model} takes the warm pool over budget ({Used} > {Budget} bytes): every other model is busy")]
        public static partial void OverBudget(ILogger logger, string model, long used, long budget);
    }
}

/// <summary>A caller's hold on a warm model; the model is not evicted until every lease is disposed.</summary>
public sealed class WarmModelLease : IDisposable
{
    private readonly WarmPool _pool;
    private readonly WarmPool.Entry _entry;
    private int _disposed;

    internal WarmModelLease(WarmPool pool, WarmPool.Entry entry, ILoadedModel model, ModelLoadTimes? loaded)
    {
        _pool = pool;
        _entry = entry;
        Model = model;
        Loaded = loaded;
    }

    public ILoadedModel Model { get; }

    /// <summary>When the caller had to wait for the model to load: the moments of that load (a cold start);
    /// null when the model was warm already.</summary>
    public ModelLoadTimes? Loaded { get; }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _pool.Release(_entry);
        }
    }
}

/// <summary>When a load had its weights on disk and verified, and when the engine's session was ready.</summary>
public sealed record ModelLoadTimes(DateTimeOffset WeightsReadyAt, DateTimeOffset SessionCreatedAt);

public sealed record WarmModelInfo(string Name, string Version, long Bytes, int Leases, string State);

public sealed record WarmPoolCounters(long Hits, long Misses, long Loads, long LoadFailures, long Evictions, TimeSpan LoadTime, long UsedBytes, long BudgetBytes);
