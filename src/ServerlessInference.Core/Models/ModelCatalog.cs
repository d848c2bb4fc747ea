using System.Collections.Concurrent;

namespace ServerlessInference.Models;

/// <summary>Manifests the gateway and workers look up on every request, cached for a short time so an
/// upload becomes visible without a restart and the hot path does not touch the store.</summary>
/// <remarks>Thread-safe. Unknown models are not cached, so a model uploaded after a 404 is found at once.</remarks>
public sealed class ModelCatalog(IModelStore store, TimeProvider timeProvider, TimeSpan? refreshAfter = null)
{
    private readonly ConcurrentDictionary<(string Name, string? Version), (ModelManifest Manifest, long FetchedAt)> _cache = new();
    private readonly TimeSpan _refreshAfter = refreshAfter ?? TimeSpan.FromSeconds(10);

    public IModelStore Store => store;

    /// <summary>The manifest of a model version (latest when <paramref name="version"/> is null).</summary>
    /// <exception cref="InferenceException"><c>NotFound</c> when there is no such model or version.</exception>
    public async ValueTask<ModelManifest> GetAsync(string name, string? version, CancellationToken cancellationToken)
    {
        var key = (name, version);
        var now = timeProvider.GetTimestamp();
        if (_cache.TryGetValue(key, out var cached) && timeProvider.GetElapsedTime(cached.FetchedAt, now) < _refreshAfter)
        {
            return cached.Manifest;
        }

        var manifest = await store.GetManifestAsync(name, version, cancellationToken).ConfigureAwait(false)
            ?? throw new InferenceException(
                InferenceError.NotFound,
                version is null ? $"unknown model '{name}'" : $"model '{name}' has no version '{version}'");
        _cache[key] = (manifest, now);
        return manifest;
    }
}
