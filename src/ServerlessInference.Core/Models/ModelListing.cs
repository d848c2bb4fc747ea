using System.Collections;

namespace ServerlessInference.Models;

/// <summary>What a model store holds: every manifest that reads, and the ones that do not (skipped, each with why),
/// so one malformed manifest never fails the listing of every model.</summary>
public sealed class ModelListing(IReadOnlyList<ModelManifest> manifests, IReadOnlyList<InvalidManifest> invalid) : IReadOnlyList<ModelManifest>
{
    public static ModelListing Empty { get; } = new([], []);

    /// <summary>Manifests that could not be read, skipped from the listing.</summary>
    public IReadOnlyList<InvalidManifest> Invalid => invalid;

    public int Count => manifests.Count;

    public ModelManifest this[int index] => manifests[index];

    public IEnumerator<ModelManifest> GetEnumerator() => manifests.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>A manifest that could not be read: where it sits (model and version as the store names them, never a
/// local path) and why.</summary>
public sealed record InvalidManifest(string Model, string Version, string Error);
