using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using Azure;
using Azure.Core;
using Azure.Identity;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessInference.Models;

namespace ServerlessInference.Azure.Models;

/// <summary>A <see cref="IModelStore"/> on an Azure Blob Storage container (or Azurite):
/// <c>{name}/{version}/model.onnx</c> + <c>{name}/{version}/manifest.json</c>.</summary>
/// <remarks>
/// <para>Thread-safe. Constructing the store does no I/O, so a host starts while storage is down; the container is
/// created by the first upload (reads of a missing container see no models), so readers need only read access.</para>
/// <para>An upload stages the weights block by block while hashing them (one block in memory at a time), commits
/// them with the SHA-256 in the blob's <c>sha256</c> metadata, and writes the manifest last, so a reader never sees a
/// manifest whose weights are incomplete.</para>
/// <para>Failures: a missing manifest is null, missing weights are <see cref="InferenceError.ModelFailure"/>, and a
/// storage outage (network failure, timeout, 5xx, refused credentials) is <see cref="InferenceError.Unavailable"/>
/// with <see cref="InferenceException.RetryAfterSeconds"/> set, raised after the client's own retries.</para>
/// </remarks>
public sealed partial class BlobModelStore : IModelStore
{
    public const string WeightsShaMetadataKey = "sha256";
    public const string ManifestBlobName = "manifest.json";
    public const int RetryAfterSeconds = 5;

    /// <summary>The newest service version Azurite 3.37 accepts; newer SDKs send later ones by default.</summary>
    public const BlobClientOptions.ServiceVersion EmulatorServiceVersion = BlobClientOptions.ServiceVersion.V2025_11_05;

    private const string EmulatorAccountName = "devstoreaccount1";
    private const int BlockSize = 8 << 20;

    private readonly BlobContainerClient _container;
    private readonly ILogger _logger;
    private readonly string _where;
    private volatile bool _containerReady;

    public BlobModelStore(BlobModelStoreOptions options, ILogger<BlobModelStore>? logger = null)
        : this(CreateContainerClient(options), logger)
    {
    }

    public BlobModelStore(BlobContainerClient container, ILogger<BlobModelStore>? logger = null)
    {
        _container = container;
        _logger = logger ?? NullLogger<BlobModelStore>.Instance;
        // Never a SAS query: this text goes into error messages.
        _where = $"container '{container.Name}' at {container.Uri.GetLeftPart(UriPartial.Path)}";
    }

    public BlobContainerClient Container => _container;

    /// <summary>A client for the configured container. Pins <see cref="EmulatorServiceVersion"/> when the endpoint is
    /// loopback or the account is Azurite's <c>devstoreaccount1</c>; Azure gets the SDK's default version.</summary>
    public static BlobContainerClient CreateContainerClient(BlobModelStoreOptions options)
    {
        var failures = BlobModelStoreOptionsValidator.Failures(options);
        if (failures.Count > 0)
        {
            throw new InvalidOperationException(string.Join("; ", failures));
        }

        BlobServiceClient service;
        if (!string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            var connectionString = options.ConnectionString.Trim();
            var probe = new BlobServiceClient(connectionString);
            service = new BlobServiceClient(connectionString, ClientOptions(options, IsEmulator(probe.Uri, probe.AccountName)));
        }
        else
        {
            var uri = new Uri(options.ServiceUri!.Trim(), UriKind.Absolute);
            TokenCredential credential = new DefaultAzureCredential(new DefaultAzureCredentialOptions
            {
                ManagedIdentityClientId = string.IsNullOrWhiteSpace(options.ManagedIdentityClientId) ? null : options.ManagedIdentityClientId.Trim(),
            });
            service = new BlobServiceClient(uri, credential, ClientOptions(options, IsEmulator(uri, accountName: null)));
        }

        return service.GetBlobContainerClient(options.Container);
    }

    public async ValueTask<ModelListing> ListAsync(CancellationToken cancellationToken)
    {
        var manifestBlobs = new List<string>();
        try
        {
            await foreach (var item in _container.GetBlobsAsync(new GetBlobsOptions(), cancellationToken).ConfigureAwait(false))
            {
                var parts = item.Name.Split('/');
                if (parts.Length == 3 && parts[2] == ManifestBlobName)
                {
                    manifestBlobs.Add(item.Name);
                }
            }
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return ModelListing.Empty;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && IsOutage(ex))
        {
            throw Unavailable("listing models", ex);
        }

        var manifests = new List<ModelManifest>(manifestBlobs.Count);
        var invalid = new List<InvalidManifest>();
        foreach (var blobName in manifestBlobs)
        {
            try
            {
                var manifest = await ReadManifestAsync(blobName, cancellationToken).ConfigureAwait(false);
                if (manifest is not null)
                {
                    manifests.Add(manifest);
                }
            }
            catch (InvalidDataException ex)
            {
                var parts = blobName.Split('/');
                invalid.Add(new InvalidManifest(parts[0], parts[1], (ex.InnerException as InvalidDataException ?? ex).Message));
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

        if (version is not null)
        {
            return await ReadManifestAsync($"{name}/{version}/{ManifestBlobName}", cancellationToken).ConfigureAwait(false);
        }

        var prefix = name + "/";
        var versions = new List<string>();
        try
        {
            var listing = _container.GetBlobsByHierarchyAsync(new GetBlobsByHierarchyOptions { Prefix = prefix, Delimiter = "/" }, cancellationToken);
            await foreach (var item in listing.ConfigureAwait(false))
            {
                if (item.IsPrefix)
                {
                    versions.Add(item.Prefix[prefix.Length..].TrimEnd('/'));
                }
            }
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return null;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && IsOutage(ex))
        {
            throw Unavailable($"listing the versions of model '{name}'", ex);
        }

        // Newest first; a version whose manifest is not written yet (an upload in progress) is skipped.
        foreach (var candidate in ModelVersions.LatestFirst(versions.Where(ModelVersions.IsSafeSegment)))
        {
            var manifest = await ReadManifestAsync($"{prefix}{candidate}/{ManifestBlobName}", cancellationToken).ConfigureAwait(false);
            if (manifest is not null)
            {
                return manifest;
            }
        }

        return null;
    }

    public async ValueTask<Stream> OpenWeightsAsync(ModelManifest manifest, CancellationToken cancellationToken)
    {
        if (!ModelVersions.IsSafeSegment(manifest.Name) || !ModelVersions.IsSafeSegment(manifest.Version) || !ModelVersions.IsSafeSegment(manifest.File))
        {
            throw new InferenceException(InferenceError.ModelFailure, $"model '{manifest.Key}' with file '{manifest.File}' has no valid place in the model store");
        }

        var blobName = WeightsBlobName(manifest);
        BlobDownloadStreamingResult download;
        try
        {
            download = (await _container.GetBlobClient(blobName).DownloadStreamingAsync(new BlobDownloadOptions(), cancellationToken).ConfigureAwait(false)).Value;
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            throw new InferenceException(InferenceError.ModelFailure, $"weights of model '{manifest.Key}' are missing from the model store (blob '{blobName}' in {_where})", ex);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && IsOutage(ex))
        {
            throw Unavailable($"downloading the weights of model '{manifest.Key}'", ex);
        }

        // The caller hashes what it reads; this only fails early when the blob was replaced after the manifest was read.
        if (download.Details.Metadata.TryGetValue(WeightsShaMetadataKey, out var stored)
            && !string.Equals(stored, manifest.Sha256, StringComparison.OrdinalIgnoreCase))
        {
            download.Dispose();
            throw new InferenceException(
                InferenceError.ModelFailure,
                $"weights of model '{manifest.Key}' failed the sha256 check: manifest says {manifest.Sha256}, blob '{blobName}' records {stored} (replaced after the manifest was read?)");
        }

        return new BlobWeightsStream(download, ex => IsOutage(ex) ? Unavailable($"downloading the weights of model '{manifest.Key}'", ex) : null);
    }

    public async ValueTask<ModelManifest> UploadAsync(ModelManifest manifest, Stream weights, CancellationToken cancellationToken)
    {
        if (!ModelVersions.IsSafeSegment(manifest.Name) || !ModelVersions.IsSafeSegment(manifest.Version) || !ModelVersions.IsSafeSegment(manifest.File) || manifest.File == ManifestBlobName)
        {
            throw new InferenceException(
                InferenceError.BadRequest,
                $"model name, version and file must be plain path segments (and the file not '{ManifestBlobName}'): '{manifest.Key}/{manifest.File}'");
        }

        try
        {
            await EnsureContainerAsync(cancellationToken).ConfigureAwait(false);
            var (sha, size) = await UploadWeightsAsync(_container.GetBlockBlobClient(WeightsBlobName(manifest)), weights, cancellationToken).ConfigureAwait(false);
            var stored = manifest with { Sha256 = sha, SizeBytes = size };
            await _container.GetBlobClient($"{manifest.Name}/{manifest.Version}/{ManifestBlobName}").UploadAsync(
                BinaryData.FromBytes(ModelManifestJson.Serialize(stored)),
                new BlobUploadOptions { HttpHeaders = new BlobHttpHeaders { ContentType = "application/json" } },
                cancellationToken).ConfigureAwait(false);
            Log.Uploaded(_logger, stored.Key, size, sha);
            return stored;
        }
        catch (RequestFailedException ex) when (ex.Status == 404 && !cancellationToken.IsCancellationRequested)
        {
            // The container was deleted under us: create it again on the next upload.
            _containerReady = false;
            throw Unavailable($"uploading model '{manifest.Key}'", ex);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && IsOutage(ex))
        {
            throw Unavailable($"uploading model '{manifest.Key}'", ex);
        }
    }

    public async ValueTask<IReadOnlyList<ModelManifest>> DeleteAsync(string name, string? version, CancellationToken cancellationToken)
    {
        if (!ModelVersions.IsSafeSegment(name) || (version is not null && !ModelVersions.IsSafeSegment(version)))
        {
            return [];
        }

        var prefix = version is null ? $"{name}/" : $"{name}/{version}/";
        try
        {
            var blobs = new List<string>();
            await foreach (var item in _container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix }, cancellationToken).ConfigureAwait(false))
            {
                blobs.Add(item.Name);
            }

            var removed = new List<ModelManifest>();
            // Manifests first: a reader that finds a manifest still finds its weights.
            foreach (var blobName in blobs.Where(b => b.EndsWith("/" + ManifestBlobName, StringComparison.Ordinal)))
            {
                try
                {
                    if (await ReadManifestAsync(blobName, cancellationToken).ConfigureAwait(false) is { } manifest)
                    {
                        removed.Add(manifest);
                    }
                }
                catch (InvalidDataException)
                {
                    // Unreadable: removed all the same.
                }

                await _container.GetBlobClient(blobName).DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            foreach (var blobName in blobs.Where(b => !b.EndsWith("/" + ManifestBlobName, StringComparison.Ordinal)))
            {
                await _container.GetBlobClient(blobName).DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            Log.Deleted(_logger, prefix, blobs.Count);
            return removed;
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return [];
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && IsOutage(ex))
        {
            throw Unavailable($"deleting '{prefix}'", ex);
        }
    }

    private static async ValueTask<(string Sha256, long Size)> UploadWeightsAsync(BlockBlobClient blob, Stream weights, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        // Block ids must all have one length; a per-upload prefix keeps two concurrent uploads' blocks apart.
        var uploadId = Guid.NewGuid().ToString("N");
        var blockIds = new List<string>();
        long size = 0;
        var buffer = ArrayPool<byte>.Shared.Rent(BlockSize);
        try
        {
            while (true)
            {
                var read = await weights.ReadAtLeastAsync(buffer.AsMemory(0, BlockSize), BlockSize, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                hash.AppendData(buffer, 0, read);
                var blockId = Convert.ToBase64String(Encoding.ASCII.GetBytes($"{uploadId}-{blockIds.Count:D6}"));
                using (var block = new MemoryStream(buffer, 0, read, writable: false))
                {
                    await blob.StageBlockAsync(blockId, block, new BlockBlobStageBlockOptions(), cancellationToken).ConfigureAwait(false);
                }

                blockIds.Add(blockId);
                size += read;
                if (read < BlockSize)
                {
                    break;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        var sha = Convert.ToHexStringLower(hash.GetHashAndReset());
        await blob.CommitBlockListAsync(
            blockIds,
            new CommitBlockListOptions
            {
                HttpHeaders = new BlobHttpHeaders { ContentType = "application/octet-stream" },
                Metadata = new Dictionary<string, string> { [WeightsShaMetadataKey] = sha },
            },
            cancellationToken).ConfigureAwait(false);
        return (sha, size);
    }

    private async ValueTask EnsureContainerAsync(CancellationToken cancellationToken)
    {
        if (_containerReady)
        {
            return;
        }

        // Idempotent, so concurrent first uploads may both ask.
        var created = await _container.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        if (created is not null)
        {
            Log.ContainerCreated(_logger, _where);
        }

        _containerReady = true;
    }

    private async ValueTask<ModelManifest?> ReadManifestAsync(string blobName, CancellationToken cancellationToken)
    {
        BinaryData content;
        try
        {
            content = (await _container.GetBlobClient(blobName).DownloadContentAsync(cancellationToken).ConfigureAwait(false)).Value.Content;
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return null;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && IsOutage(ex))
        {
            throw Unavailable($"reading manifest '{blobName}'", ex);
        }

        try
        {
            return ModelManifestJson.Deserialize(content.ToMemory().Span);
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"manifest blob '{blobName}' in {_where}: {ex.Message}", ex);
        }
    }

    private InferenceException Unavailable(string operation, Exception ex)
    {
        var reason = Describe(ex);
        Log.Unavailable(_logger, operation, _where, reason);
        return new InferenceException(InferenceError.Unavailable, $"the model store ({_where}) is unavailable while {operation}: {reason}; retry later", ex)
        {
            RetryAfterSeconds = RetryAfterSeconds,
        };
    }

    /// <summary>True for failures a retry later may cure. Reached only when the caller did not cancel, so a
    /// cancellation here is the client's network timeout.</summary>
    private static bool IsOutage(Exception ex) => ex switch
    {
        RequestFailedException r => r.Status != 404,
        AggregateException a => a.InnerExceptions.Count > 0 && a.InnerExceptions.All(IsOutage),
        IOException or HttpRequestException or TimeoutException or OperationCanceledException => true,
        AuthenticationFailedException or CredentialUnavailableException => true,
        _ => false,
    };

    private static string Describe(Exception ex) => ex switch
    {
        AggregateException { InnerExceptions.Count: > 0 } a => Describe(a.InnerExceptions[^1]),
        RequestFailedException { Status: > 0 } r => $"HTTP {r.Status} {r.ErrorCode}".TrimEnd(),
        { InnerException: { } inner } => Describe(inner),
        _ => ex.Message.Split('\n')[0].Trim(),
    };

    private static string WeightsBlobName(ModelManifest manifest) => $"{manifest.Name}/{manifest.Version}/{manifest.File}";

    private static BlobClientOptions ClientOptions(BlobModelStoreOptions options, bool emulator)
    {
        var clientOptions = emulator ? new BlobClientOptions(EmulatorServiceVersion) : new BlobClientOptions();
        clientOptions.Retry.Mode = RetryMode.Exponential;
        clientOptions.Retry.MaxRetries = options.MaxRetries;
        clientOptions.Retry.Delay = options.RetryDelay;
        clientOptions.Retry.NetworkTimeout = options.NetworkTimeout;
        return clientOptions;
    }

    private static bool IsEmulator(Uri uri, string? accountName) =>
        uri.IsLoopback || string.Equals(accountName, EmulatorAccountName, StringComparison.Ordinal);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Created the model store's blob {Container}")]
        public static partial void ContainerCreated(ILogger logger, string container);

        [LoggerMessage(2, LogLevel.Information, "Uploaded model {Model} to blob storage: {Bytes} bytes, sha256 {Sha256}")]
        public static partial void Uploaded(ILogger logger, string model, long bytes, string sha256);

        [LoggerMessage(4, LogLevel.Information, "Deleted {Count} blobs under {Prefix} from the model store")]
        public static partial void Deleted(ILogger logger, string prefix, int count);

        [LoggerMessage(3, LogLevel.Warning, "Model store {Container} unavailable while {Operation}: {Reason}")]
        public static partial void Unavailable(ILogger logger, string operation, string container, string reason);
    }
}
