namespace ServerlessInference.Models;

/// <summary>Where model weights and manifests live (a folder, Blob Storage, ...).</summary>
/// <remarks>Thread-safe. Reads do not cache; callers that need speed keep their own copy
/// (<see cref="ModelCatalog"/> for manifests, <see cref="WeightsCache"/> for weights).</remarks>
public interface IModelStore
{
    /// <summary>Every version of every model. A manifest that cannot be read (malformed JSON, a missing field) does
    /// not fail the listing: it is skipped and reported in <see cref="ModelListing.Invalid"/>.</summary>
    ValueTask<ModelListing> ListAsync(CancellationToken cancellationToken);

    /// <summary>The manifest of <paramref name="version"/>, or of the highest version when null; null if absent.</summary>
    ValueTask<ModelManifest?> GetManifestAsync(string name, string? version, CancellationToken cancellationToken);

    /// <summary>Opens the weights for reading. The caller verifies the checksum.</summary>
    ValueTask<Stream> OpenWeightsAsync(ModelManifest manifest, CancellationToken cancellationToken);

    /// <summary>Stores weights and a manifest; computes the SHA-256 and size and returns the stored manifest.</summary>
    ValueTask<ModelManifest> UploadAsync(ModelManifest manifest, Stream weights, CancellationToken cancellationToken);

    /// <summary>Removes <paramref name="version"/> of model <paramref name="name"/>, or every version when null, and
    /// returns the manifests removed (empty when there was nothing to remove, or a name or version is not a plain path
    /// segment). The manifest goes first, so a reader never sees a manifest whose weights are gone.</summary>
    /// <remarks>Hosts that cached the manifest (<see cref="ModelCatalog"/>) or loaded the weights (<see cref="WarmPool"/>)
    /// keep serving them until their copy expires or is evicted.</remarks>
    ValueTask<IReadOnlyList<ModelManifest>> DeleteAsync(string name, string? version, CancellationToken cancellationToken);
}
