using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ServerlessInference.Models;

/// <summary>Manifests the gateway and workers look up on every request, cached for a short time so an
/// upload becomes visible without a restart and the hot path does not touch the store.</summary>
/// <remarks>
/// <para>Thread-safe. Unknown models are not cached, so a model uploaded after a 404 is found at once.</para>
/// <para>The model list (readiness, model metadata, <c>/v1/models</c>, <c>/status</c>) is cached too: refreshed once
/// it is older than the refresh period, and at once after a lookup finds a manifest the list lacks (an upload since).
/// Concurrent callers share one refresh. A malformed manifest is skipped, logged once and reported in
/// <see cref="ModelListing.Invalid"/>; looking that model up is a clear model failure, never a failure of every model.</para>
/// </remarks>
public sealed partial class ModelCatalog(IModelStore store, TimeProvider timeProvider, TimeSpan? refreshAfter = null, ILogger? logger = null)
{
    private readonly ConcurrentDictionary<(string Name, string? Version), (ModelManifest Manifest, long FetchedAt)> _cache = new();
    private readonly TimeSpan _refreshAfter = refreshAfter ?? TimeSpan.FromSeconds(10);
    private readonly ILogger _logger = logger ?? NullLogger.Instance;
    private readonly Lock _listLock = new();
    private Task<ModelListing>? _listing;
    private long _listedAt;
    private bool _listStale;
    private HashSet<InvalidManifest> _reported = [];

    public IModelStore Store => store;

    /// <summary>The manifest of a model version (latest when <paramref name="version"/> is null).</summary>
    /// <exception cref="InferenceException"><c>NotFound</c> when there is no such model or version; <c>ModelFailure</c>
    /// when its manifest cannot be read.</exception>
    public async ValueTask<ModelManifest> GetAsync(string name, string? version, CancellationToken cancellationToken)
    {
        var key = (name, version);
        var now = timeProvider.GetTimestamp();
        if (_cache.TryGetValue(key, out var cached) && timeProvider.GetElapsedTime(cached.FetchedAt, now) < _refreshAfter)
        {
            return cached.Manifest;
        }

        ModelManifest? found;
        try
        {
            found = await store.GetManifestAsync(name, version, cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidDataException ex)
        {
            Log.InvalidManifestRead(_logger, ex, name, version ?? "latest");
            throw new InferenceException(InferenceError.ModelFailure,
                $"model '{name}' cannot be served: its manifest is invalid ({(ex.InnerException as InvalidDataException ?? ex).Message})");
        }

        var manifest = found ?? throw new InferenceException(
                InferenceError.NotFound,
                version is null ? $"unknown model '{name}'" : $"model '{name}' has no version '{version}'");
        _cache[key] = (manifest, now);
        MarkListStaleUnlessListed(manifest);
        return manifest;
    }

    /// <summary>Every model version the store holds that reads, and the manifests that do not; cached (see remarks).</summary>
    /// <exception cref="InferenceException"><c>Unavailable</c> when the store cannot be reached.</exception>
    public async ValueTask<ModelListing> ListAsync(CancellationToken cancellationToken)
    {
        Task<ModelListing> listing;
        lock (_listLock)
        {
            var expired = _listing is { IsCompleted: true } && timeProvider.GetElapsedTime(_listedAt) >= _refreshAfter;
            if (_listing is null || _listing.IsFaulted || _listing.IsCanceled || _listStale || expired)
            {
                _listStale = false;
                _listedAt = timeProvider.GetTimestamp();
                // Not the caller's token: the refresh is shared, and one caller giving up must not fail the others.
                _listing = RefreshAsync();
            }

            listing = _listing;
        }

        return await listing.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<ModelListing> RefreshAsync()
    {
        var listing = await store.ListAsync(CancellationToken.None).ConfigureAwait(false);
        var seen = listing.Invalid.ToHashSet();
        foreach (var invalid in listing.Invalid)
        {
            if (!_reported.Contains(invalid))
            {
                Log.InvalidManifestListed(_logger, invalid.Model, invalid.Version, invalid.Error);
            }
        }

        _reported = seen;
        return listing;
    }

    private void MarkListStaleUnlessListed(ModelManifest manifest)
    {
        lock (_listLock)
        {
            if (_listing is { IsCompletedSuccessfully: true } done
                && !done.Result.Any(m => m.Name == manifest.Name && m.Version == manifest.Version))
            {
                _listStale = true;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "The manifest of model {Model} version {Version} is invalid and is skipped: {Error}")]
        public static partial void InvalidManifestListed(ILogger logger, string model, string version, string error);

        [LoggerMessage(2, LogLevel.Warning, "The manifest of model {Model} ({Version}) could not be read")]
        public static partial void InvalidManifestRead(ILogger logger, Exception exception, string model, string version);
    }
}
