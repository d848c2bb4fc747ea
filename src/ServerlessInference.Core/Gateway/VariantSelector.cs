using System.Collections.Concurrent;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Telemetry;

namespace ServerlessInference.Gateway;

/// <summary>What <c>/status</c> shows of one model's variant switch.</summary>
/// <param name="Model">The model.</param>
/// <param name="Version">The source version whose manifest has the rule.</param>
/// <param name="Variant">The variant it switches to.</param>
/// <param name="Threshold">The rule's <c>when_queue_depth_at_least</c>.</param>
/// <param name="Active">Whether requests without a version or variant go to the variant now.</param>
/// <param name="QueuedSeen">The model's queued jobs at the last depth read.</param>
/// <param name="Switches">Times the switch turned on or off since the gateway started.</param>
/// <param name="ChangedAt">When it last turned on or off.</param>
/// <param name="Served">Requests this gateway sent to each version (the source's and the variant's) since it started.</param>
public sealed record VariantSwitchState(string Model, string Version, string Variant, int Threshold, bool Active, long QueuedSeen,
    long Switches, DateTimeOffset? ChangedAt, IReadOnlyDictionary<string, long> Served);

/// <summary>Picks the version a request runs on: the one it names, the variant it asks for
/// (<c>parameters.variant</c>), or, for a request that names neither, the variant the manifest's rule switches to while the
/// model's queue is deep (see <see cref="ModelVariants"/> and <see cref="VariantRule"/>).</summary>
/// <remarks>
/// <para>The switch turns on when the model's queued jobs (all queued jobs when the queue cannot count per model) reach
/// <c>when_queue_depth_at_least</c> N, and off when they fall to N / 2 or fewer, so it does not flap at the edge. The depth
/// is read at most once a second per model (a Redis or Service Bus round trip), and only for models that have a rule.
/// A rule whose variant is not in the store is ignored (the original serves).</para>
/// <para>State is per gateway instance, like the rate limits: with several instances each decides on the same depth.
/// Thread-safe.</para>
/// </remarks>
public sealed class VariantSelector(ModelCatalog catalog, IJobQueue queue, TimeProvider timeProvider, InferenceMetrics metrics)
{
    /// <summary>How long one depth read is reused.</summary>
    public static readonly TimeSpan DepthRefresh = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, Switch> _switches = new(StringComparer.Ordinal);

    /// <summary>The version to run: <paramref name="requested"/> or one of its variants.</summary>
    /// <param name="requested">The manifest the URL resolved to (latest when it named no version).</param>
    /// <param name="versionNamed">Whether the URL named the version: then only an explicit variant changes it.</param>
    /// <param name="variant">The request's <c>variant</c> parameter: a variant name, <c>none</c>, or null.</param>
    /// <exception cref="InferenceException">400 for an unknown variant name or a variant of a variant; 404 when the
    /// model version has no such variant in the store.</exception>
    public async ValueTask<ModelManifest> SelectAsync(ModelManifest requested, bool versionNamed, string? variant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(requested);
        if (variant is not null)
        {
            return await ExplicitAsync(requested, variant, cancellationToken).ConfigureAwait(false);
        }

        if (versionNamed || requested.Variants is null)
        {
            return requested;
        }

        foreach (var (name, rule) in requested.Variants)
        {
            if (rule.WhenQueueDepthAtLeast is not { } threshold)
            {
                continue;
            }

            var state = _switches.GetOrAdd(requested.Key, _ => new Switch(requested.Name, requested.Version, name));
            if (!await state.IsActiveAsync(threshold, queue, timeProvider, metrics, cancellationToken).ConfigureAwait(false))
            {
                state.Served(requested.Version);
                return requested;
            }

            try
            {
                var chosen = await catalog.GetAsync(requested.Name, ModelVariants.VersionOf(requested.Version, name), cancellationToken).ConfigureAwait(false);
                state.Served(chosen.Version);
                metrics.VariantRequest(requested.Name, name);
                return chosen;
            }
            catch (InferenceException ex) when (ex.Error == InferenceError.NotFound)
            {
                state.Served(requested.Version);
                return requested;
            }
        }

        return requested;
    }

    /// <summary>Every model whose switch has been looked at, for <c>/status</c>.</summary>
    public IReadOnlyList<VariantSwitchState> Snapshot() =>
        [.. _switches.Values.Select(s => s.Snapshot()).OrderBy(s => s.Model, StringComparer.Ordinal).ThenBy(s => s.Version, StringComparer.Ordinal)];

    private async ValueTask<ModelManifest> ExplicitAsync(ModelManifest requested, string variant, CancellationToken cancellationToken)
    {
        if (variant == ModelVariants.None)
        {
            return requested;
        }

        if (!ModelVariants.Known.Contains(variant))
        {
            throw new InferenceException(InferenceError.BadRequest,
                $"parameter 'variant' is '{variant}'; it must be one of {string.Join(", ", ModelVariants.Known)} or '{ModelVariants.None}'");
        }

        if (requested.Variant == variant)
        {
            return requested;
        }

        if (requested.Variant is not null)
        {
            throw new InferenceException(InferenceError.BadRequest,
                $"version '{requested.Version}' of model '{requested.Name}' is itself the '{requested.Variant}' variant of version '{requested.SourceVersion}'; ask for a variant of the source version");
        }

        try
        {
            var chosen = await catalog.GetAsync(requested.Name, ModelVariants.VersionOf(requested.Version, variant), cancellationToken).ConfigureAwait(false);
            metrics.VariantRequest(requested.Name, variant);
            return chosen;
        }
        catch (InferenceException ex) when (ex.Error == InferenceError.NotFound)
        {
            throw new InferenceException(InferenceError.NotFound,
                $"model '{requested.Name}' version '{requested.Version}' has no '{variant}' variant (make one with: models quantize {requested.Name} --version {requested.Version})");
        }
    }

    private sealed class Switch(string model, string version, string variant)
    {
        private readonly Lock _lock = new();
        private readonly ConcurrentDictionary<string, long> _served = new(StringComparer.Ordinal);
        private bool _active;
        private long _queued;
        private long _readAt;
        private bool _read;
        private long _switches;
        private DateTimeOffset? _changedAt;
        private int _threshold;

        public async ValueTask<bool> IsActiveAsync(int threshold, IJobQueue queue, TimeProvider timeProvider, InferenceMetrics metrics, CancellationToken cancellationToken)
        {
            var now = timeProvider.GetTimestamp();
            lock (_lock)
            {
                _threshold = threshold;
                if (_read && timeProvider.GetElapsedTime(_readAt, now) < DepthRefresh)
                {
                    return _active;
                }

                // Claim this read so concurrent requests keep the last answer instead of reading too.
                _read = true;
                _readAt = now;
            }

            QueueDepth depth;
            try
            {
                depth = await queue.GetDepthAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (!cancellationToken.IsCancellationRequested)
            {
                // The queue cannot say now: keep the last decision rather than fail the request over a tuning rule.
                lock (_lock)
                {
                    return _active;
                }
            }

            var queued = depth.ByModel is { } byModel ? byModel.GetValueOrDefault(model).Queued : depth.Queued;
            lock (_lock)
            {
                _queued = queued;
                var active = _active ? queued > threshold / 2 : queued >= threshold;
                if (active != _active)
                {
                    _active = active;
                    _switches++;
                    _changedAt = timeProvider.GetUtcNow();
                    metrics.VariantSwitch(model, variant, active);
                }

                return _active;
            }
        }

        public void Served(string servedVersion) => _served.AddOrUpdate(servedVersion, 1, (_, n) => n + 1);

        public VariantSwitchState Snapshot()
        {
            lock (_lock)
            {
                return new VariantSwitchState(model, version, variant, _threshold, _active, _queued, _switches, _changedAt,
                    _served.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal));
            }
        }
    }
}
