using ServerlessInference.Models;

namespace ServerlessInference.Embedded;

/// <summary>A <see cref="IModelStore"/> on a local folder: <c>{root}/{name}/{version}/model.onnx</c> + <c>manifest.json</c>.</summary>
/// <remarks>Thread-safe for readers; an upload writes to temporary files and renames them, manifest last, so a
/// reader never sees a manifest whose weights are incomplete.</remarks>
public sealed class FolderModelStore(string root) : IModelStore
{
    public const string ManifestFileName = "manifest.json";

    public string Root { get; } = Path.GetFullPath(root);

    public async ValueTask<ModelListing> ListAsync(CancellationToken cancellationToken)
    {
        var manifests = new List<ModelManifest>();
        var invalid = new List<InvalidManifest>();
        if (!Directory.Exists(Root))
        {
            return ModelListing.Empty;
        }

        foreach (var modelDir in Directory.EnumerateDirectories(Root))
        {
            foreach (var versionDir in Directory.EnumerateDirectories(modelDir))
            {
                try
                {
                    var manifest = await ReadManifestAsync(versionDir, cancellationToken).ConfigureAwait(false);
                    if (manifest is not null)
                    {
                        manifests.Add(manifest);
                    }
                }
                catch (InvalidDataException ex)
                {
                    invalid.Add(new InvalidManifest(Path.GetFileName(modelDir), Path.GetFileName(versionDir), ex.Message));
                }
            }
        }

        return new ModelListing(manifests, invalid);
    }

    public async ValueTask<ModelManifest?> GetManifestAsync(string name, string? version, CancellationToken cancellationToken)
    {
        if (!ModelVersions.IsSafeSegment(name) || (version is not null && !ModelVersions.IsSafeSegment(version)))
        {
            return null;
        }

        var modelDir = Path.Combine(Root, name);
        if (!Directory.Exists(modelDir))
        {
            return null;
        }

        if (version is not null)
        {
            return await ReadManifestAsync(Path.Combine(modelDir, version), cancellationToken).ConfigureAwait(false);
        }

        var versions = Directory.EnumerateDirectories(modelDir)
            .Select(Path.GetFileName)
            .OfType<string>()
            .Where(v => File.Exists(Path.Combine(modelDir, v, ManifestFileName)))
            .ToList();
        var latest = ModelVersions.Latest(versions);
        return latest is null ? null : await ReadManifestAsync(Path.Combine(modelDir, latest), cancellationToken).ConfigureAwait(false);
    }

    public ValueTask<Stream> OpenWeightsAsync(ModelManifest manifest, CancellationToken cancellationToken)
    {
        var path = Path.Combine(Root, manifest.Name, manifest.Version, manifest.File);
        if (!File.Exists(path))
        {
            throw new InferenceException(InferenceError.ModelFailure, $"weights of model '{manifest.Key}' are missing from the model store ({path})");
        }

        Stream stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return ValueTask.FromResult(stream);
    }

    public async ValueTask<ModelManifest> UploadAsync(ModelManifest manifest, Stream weights, CancellationToken cancellationToken)
    {
        if (!ModelVersions.IsSafeSegment(manifest.Name) || !ModelVersions.IsSafeSegment(manifest.Version) || !ModelVersions.IsSafeSegment(manifest.File))
        {
            throw new InferenceException(InferenceError.BadRequest, $"model name, version and file must be plain path segments: '{manifest.Key}/{manifest.File}'");
        }

        if (string.Equals(manifest.File, ManifestFileName, StringComparison.OrdinalIgnoreCase))
        {
            throw new InferenceException(InferenceError.BadRequest, $"the weights file of '{manifest.Key}' cannot be named {ManifestFileName}");
        }

        var dir = Path.Combine(Root, manifest.Name, manifest.Version);
        Directory.CreateDirectory(dir);
        var weightsPath = Path.Combine(dir, manifest.File);
        var temp = weightsPath + ".part";
        string sha;
        long size;
        await using (var target = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous))
        {
            sha = await WeightsCache.CopyAndHashAsync(weights, target, cancellationToken).ConfigureAwait(false);
            size = target.Length;
        }

        File.Move(temp, weightsPath, overwrite: true);
        var stored = manifest with { Sha256 = sha, SizeBytes = size };
        var manifestPath = Path.Combine(dir, ManifestFileName);
        await File.WriteAllBytesAsync(manifestPath + ".part", ModelManifestJson.Serialize(stored), cancellationToken).ConfigureAwait(false);
        File.Move(manifestPath + ".part", manifestPath, overwrite: true);
        return stored;
    }

    public async ValueTask<IReadOnlyList<ModelManifest>> DeleteAsync(string name, string? version, CancellationToken cancellationToken)
    {
        if (!ModelVersions.IsSafeSegment(name) || (version is not null && !ModelVersions.IsSafeSegment(version)))
        {
            return [];
        }

        var modelDir = Path.Combine(Root, name);
        if (!Directory.Exists(modelDir))
        {
            return [];
        }

        var versionDirs = version is not null ? [Path.Combine(modelDir, version)] : Directory.GetDirectories(modelDir);
        var removed = new List<ModelManifest>();
        foreach (var versionDir in versionDirs.Where(Directory.Exists))
        {
            ModelManifest? manifest;
            try
            {
                manifest = await ReadManifestAsync(versionDir, cancellationToken).ConfigureAwait(false);
            }
            catch (InvalidDataException)
            {
                // An unreadable manifest is still removed; there is just nothing to report about it.
                manifest = null;
            }

            File.Delete(Path.Combine(versionDir, ManifestFileName));
            Directory.Delete(versionDir, recursive: true);
            if (manifest is not null)
            {
                removed.Add(manifest);
            }
        }

        if (!Directory.EnumerateFileSystemEntries(modelDir).Any())
        {
            Directory.Delete(modelDir);
        }

        return removed;
    }

    private static async ValueTask<ModelManifest?> ReadManifestAsync(string versionDir, CancellationToken cancellationToken)
    {
        var path = Path.Combine(versionDir, ManifestFileName);
        if (!File.Exists(path))
        {
            return null;
        }

        var bytes = await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
        return ModelManifestJson.Deserialize(bytes);
    }
}
