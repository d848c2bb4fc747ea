using ServerlessInference.Models;

namespace ServerlessInference.Generation;

/// <summary>Finds the draft model a <c>text-generation</c> manifest names in <c>generation.speculative.draft</c>.</summary>
/// <remarks>Thread-safe. Engines load the draft beside their target, in the same warm-pool entry.</remarks>
public interface IDraftModelSource
{
    /// <summary>The latest version of model <paramref name="name"/> and a local file of its verified weights; null when
    /// the store has no such model.</summary>
    ValueTask<(ModelManifest Manifest, string WeightsPath)?> FindAsync(string name, CancellationToken cancellationToken);
}

/// <summary>Draft models from the worker's model store, through its weights cache.</summary>
public sealed class StoreDraftModelSource(IModelStore store, WeightsCache weights) : IDraftModelSource
{
    public async ValueTask<(ModelManifest Manifest, string WeightsPath)?> FindAsync(string name, CancellationToken cancellationToken)
    {
        var manifest = await store.GetManifestAsync(name, null, cancellationToken).ConfigureAwait(false);
        if (manifest is null)
        {
            return null;
        }

        return (manifest, await weights.GetLocalPathAsync(manifest, cancellationToken).ConfigureAwait(false));
    }
}
