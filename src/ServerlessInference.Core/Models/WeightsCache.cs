using System.Security.Cryptography;
using Microsoft.Extensions.Logging;

namespace ServerlessInference.Models;

/// <summary>A local disk cache of model weights keyed by SHA-256, so a second cold start skips the download.</summary>
/// <remarks>Every file is verified against the manifest's SHA-256 before it is handed out, whether it was just
/// fetched or already cached; a cached file that fails the check is fetched again once. Thread-safe: concurrent
/// fetches of the same weights write to distinct temporary files and the last atomic rename wins.</remarks>
public sealed partial class WeightsCache(IModelStore store, string directory, ILogger<WeightsCache> logger)
{
    public string Directory { get; } = directory;

    /// <summary>Returns the path of verified weights for <paramref name="manifest"/>, fetching them if needed.</summary>
    /// <exception cref="InferenceException">The store's weights do not match the manifest (<c>ModelFailure</c>).</exception>
    public async ValueTask<string> GetLocalPathAsync(ModelManifest manifest, CancellationToken cancellationToken)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var path = Path.Combine(Directory, manifest.Sha256.ToLowerInvariant() + ".onnx");
        if (File.Exists(path))
        {
            var cachedHash = await HashFileAsync(path, cancellationToken).ConfigureAwait(false);
            if (string.Equals(cachedHash, manifest.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                Log.CacheHit(logger, manifest.Key, path);
                return path;
            }

            Log.CacheCorrupt(logger, manifest.Key, path);
            File.Delete(path);
        }

        var temp = path + "." + Guid.NewGuid().ToString("N") + ".part";
        try
        {
            string actual;
            await using (var source = await store.OpenWeightsAsync(manifest, cancellationToken).ConfigureAwait(false))
            await using (var target = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous))
            {
                actual = await CopyAndHashAsync(source, target, cancellationToken).ConfigureAwait(false);
            }

            if (!string.Equals(actual, manifest.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new InferenceException(
                    InferenceError.ModelFailure,
                    $"weights of model '{manifest.Key}' failed the sha256 check: manifest says {manifest.Sha256}, the stored file hashes to {actual}");
            }

            File.Move(temp, path, overwrite: true);
            Log.Fetched(logger, manifest.Key, manifest.SizeBytes, path);
            return path;
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    public static async ValueTask<string> HashFileAsync(string path, CancellationToken cancellationToken)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Copies <paramref name="source"/> to <paramref name="target"/> and returns the lower-case hex SHA-256.</summary>
    public static async ValueTask<string> CopyAndHashAsync(Stream source, Stream target, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            int read;
            while ((read = await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "Weights of {Model} found in the disk cache at {Path}")]
        public static partial void CacheHit(ILogger logger, string model, string path);

        [LoggerMessage(2, LogLevel.Warning, "Cached weights of {Model} at {Path} failed the sha256 check; fetching again")]
        public static partial void CacheCorrupt(ILogger logger, string model, string path);

        [LoggerMessage(3, LogLevel.Information, "Fetched {Bytes} bytes of weights of {Model} into {Path}")]
        public static partial void Fetched(ILogger logger, string model, long bytes, string path);
    }
}
