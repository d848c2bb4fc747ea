using System.Security.Cryptography;
using Microsoft.Extensions.Logging;

namespace ServerlessInference.Models;

/// <summary>A local disk cache of model weights keyed by SHA-256, so a second cold start skips the download.</summary>
/// <remarks>
/// <para>Every file is verified against the manifest's SHA-256 before it is handed out; a cached file that fails the
/// check is fetched again once. Thread-safe: concurrent fetches of the same weights write to distinct temporary files
/// and the last atomic rename wins.</para>
/// <para>A verified file gets a proof beside it (<c>{sha256}.onnx.verified</c>, written atomically): the SHA-256 and
/// the file's <see cref="FileIdentity"/> (device, inode, length, mtime and ctime) as they were before it was hashed. A
/// later load whose file still has exactly that identity skips the hash; any difference, or a proof that is missing,
/// unreadable or names another hash, means hashing again (and a new proof when it passes). Trust boundary: the cache
/// folder is the worker's own. The proof catches ordinary changes (a rewrite, a copy or rename over the file, a
/// truncation, restored mtimes: ctime cannot be set back from user space), not someone who can write this folder and
/// forge a proof, change the system clock or the block device, nor a change in the same coarse timestamp tick (a few
/// ms) as the identity read, nor bit rot on the medium. Where <c>statx</c> is unavailable (not Linux), every load
/// hashes as before.</para>
/// </remarks>
public sealed partial class WeightsCache(IModelStore store, string directory, ILogger<WeightsCache> logger)
{
    private const string ProofSuffix = ".verified";
    private const string ProofVersion = "si-weights-proof/1";

    public string Directory { get; } = directory;

    /// <summary>Returns the path of verified weights for <paramref name="manifest"/>, fetching them if needed.</summary>
    /// <exception cref="InferenceException">The store's weights do not match the manifest (<c>ModelFailure</c>).</exception>
    public async ValueTask<string> GetLocalPathAsync(ModelManifest manifest, CancellationToken cancellationToken) =>
        (await GetVerifiedAsync(manifest, cancellationToken).ConfigureAwait(false)).Path;

    /// <summary>Returns the path of verified weights for <paramref name="manifest"/> and how they were verified.</summary>
    /// <exception cref="InferenceException">The store's weights do not match the manifest (<c>ModelFailure</c>).</exception>
    public async ValueTask<VerifiedWeights> GetVerifiedAsync(ModelManifest manifest, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        System.IO.Directory.CreateDirectory(Directory);
        var sha = manifest.Sha256.ToLowerInvariant();
        var path = Path.Combine(Directory, sha + ".onnx");
        if (File.Exists(path))
        {
            var identity = FileIdentity.TryRead(path);
            if (identity is { } before && ProofHolds(path, sha, before))
            {
                Log.ProofHit(logger, manifest.Key, path);
                return new VerifiedWeights(path, WeightsVerification.Proof);
            }

            var cachedHash = await HashFileAsync(path, cancellationToken).ConfigureAwait(false);
            if (string.Equals(cachedHash, sha, StringComparison.Ordinal))
            {
                WriteProof(path, sha, identity);
                Log.CacheHit(logger, manifest.Key, path);
                return new VerifiedWeights(path, WeightsVerification.Hashed);
            }

            Log.CacheCorrupt(logger, manifest.Key, path);
            DeleteProof(path);
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

            if (!string.Equals(actual, sha, StringComparison.Ordinal))
            {
                throw new InferenceException(
                    InferenceError.ModelFailure,
                    $"weights of model '{manifest.Key}' failed the sha256 check: manifest says {manifest.Sha256}, the stored file hashes to {actual}");
            }

            File.Move(temp, path, overwrite: true);
            WriteProof(path, sha, FileIdentity.TryRead(path));
            Log.Fetched(logger, manifest.Key, manifest.SizeBytes, path);
            return new VerifiedWeights(path, WeightsVerification.Downloaded);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    private static bool ProofHolds(string weightsPath, string sha, FileIdentity identity)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(weightsPath + ProofSuffix);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }

        return lines.Length == 3
            && lines[0] == ProofVersion
            && lines[1] == sha
            && FileIdentity.TryParse(lines[2]) == identity;
    }

    private void WriteProof(string weightsPath, string sha, FileIdentity? identity)
    {
        if (identity is not { } known)
        {
            return;
        }

        var proof = weightsPath + ProofSuffix;
        var temp = proof + "." + Guid.NewGuid().ToString("N") + ".part";
        try
        {
            File.WriteAllText(temp, $"{ProofVersion}\n{sha}\n{known.Format()}\n");
            File.Move(temp, proof, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Without a proof the next load hashes again: slower, never wrong.
            Log.ProofNotWritten(logger, proof, e.Message);
            File.Delete(temp);
        }
    }

    private static void DeleteProof(string weightsPath) => File.Delete(weightsPath + ProofSuffix);

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

        [LoggerMessage(4, LogLevel.Debug, "Weights of {Model} at {Path} unchanged since their sha256 check (proof of verification holds); not hashed again")]
        public static partial void ProofHit(ILogger logger, string model, string path);

        [LoggerMessage(5, LogLevel.Warning, "Could not write the proof of verification {Path}: {Reason}; the next load hashes again")]
        public static partial void ProofNotWritten(ILogger logger, string path, string reason);
    }
}

/// <summary>Weights in the local cache, checked against the manifest's SHA-256.</summary>
/// <param name="Path">The local file.</param>
/// <param name="Verification">How the check was made this time.</param>
public sealed record VerifiedWeights(string Path, WeightsVerification Verification);

/// <summary>How <see cref="WeightsCache"/> knew cached weights were the manifest's.</summary>
public enum WeightsVerification
{
    /// <summary>Fetched from the model store and hashed while being written.</summary>
    Downloaded,

    /// <summary>Already cached, hashed again (no proof, or the file may have changed since).</summary>
    Hashed,

    /// <summary>Already cached and unchanged since it was hashed (its proof of verification holds): not read.</summary>
    Proof,
}
