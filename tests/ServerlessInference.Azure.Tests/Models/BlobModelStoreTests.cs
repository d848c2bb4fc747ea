using System.Net;
using System.Net.Sockets;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessInference.Azure.Models;
using ServerlessInference.Models;
using ServerlessInference.Testing.Contracts;
using ServerlessInference.Testing.Services;

namespace ServerlessInference.Azure.Tests.Models;

[Collection(AzuriteCollection.Name)]
[Trait("Category", "Integration")]
public sealed class BlobModelStoreTests(AzuriteServer azurite) : IDisposable
{
    private readonly string _cacheDir = Directory.CreateTempSubdirectory("si-weights-cache-").FullName;

    public void Dispose() => Directory.Delete(_cacheDir, recursive: true);

    private BlobModelStore Store() => new(new BlobModelStoreOptions
    {
        ConnectionString = azurite.ConnectionString,
        Container = AzuriteCollection.NewContainerName(),
    });

    private WeightsCache Cache(IModelStore store) => new(store, _cacheDir, NullLogger<WeightsCache>.Instance);

    [Fact]
    public async Task UploadAsync_Weights_StoresShaInBlobMetadata()
    {
        var store = Store();

        var stored = await store.UploadAsync(ModelStoreContract.Manifest("m"), new MemoryStream(ModelStoreContract.Weights(5000, seed: 1)), default);

        BlobProperties properties = await store.Container.GetBlobClient("m/1/model.onnx").GetPropertiesAsync();
        Assert.Equal(stored.Sha256, properties.Metadata[BlobModelStore.WeightsShaMetadataKey]);
        Assert.Equal(stored.SizeBytes, properties.ContentLength);
        Assert.True(await store.Container.GetBlobClient("m/1/manifest.json").ExistsAsync());
    }

    [Fact]
    public async Task UploadAsync_ContainerMissing_CreatesItOnFirstUploadOnly()
    {
        var store = Store();

        Assert.Empty(await store.ListAsync(default));
        Assert.Null(await store.GetManifestAsync("m", null, default));
        Assert.False(await store.Container.ExistsAsync(), "reads must not create the container");

        await store.UploadAsync(ModelStoreContract.Manifest("m"), new MemoryStream([1, 2, 3]), default);

        Assert.True(await store.Container.ExistsAsync());
    }

    [Fact]
    public async Task GetLocalPathAsync_UploadedWeights_ReturnsVerifiedCopy()
    {
        var store = Store();
        var weights = ModelStoreContract.Weights(300_000, seed: 2);
        var stored = await store.UploadAsync(ModelStoreContract.Manifest("m"), new MemoryStream(weights), default);

        var path = await Cache(store).GetLocalPathAsync(stored, default);

        Assert.Equal(weights, await File.ReadAllBytesAsync(path));
    }

    [Fact]
    public async Task GetLocalPathAsync_BlobOverwrittenWithOtherBytes_FailsWithSha256Error()
    {
        var store = Store();
        var stored = await store.UploadAsync(ModelStoreContract.Manifest("m"), new MemoryStream(ModelStoreContract.Weights(4096, seed: 3)), default);
        await store.Container.GetBlobClient("m/1/model.onnx").UploadAsync(BinaryData.FromBytes(ModelStoreContract.Weights(4096, seed: 4)), overwrite: true);

        var ex = await Assert.ThrowsAsync<InferenceException>(async () => await Cache(store).GetLocalPathAsync(stored, default));

        Assert.Equal(InferenceError.ModelFailure, ex.Error);
        Assert.Contains("sha256", ex.Message, StringComparison.Ordinal);
        Assert.Contains(stored.Sha256, ex.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(_cacheDir));
    }

    [Fact]
    public async Task OpenWeightsAsync_MetadataShaDiffersFromManifest_FailsBeforeDownloading()
    {
        var store = Store();
        var stored = await store.UploadAsync(ModelStoreContract.Manifest("m"), new MemoryStream(ModelStoreContract.Weights(4096, seed: 5)), default);
        await store.Container.GetBlobClient("m/1/model.onnx").SetMetadataAsync(new Dictionary<string, string> { [BlobModelStore.WeightsShaMetadataKey] = new string('0', 64) });

        var ex = await Assert.ThrowsAsync<InferenceException>(async () => await store.OpenWeightsAsync(stored, default));

        Assert.Equal(InferenceError.ModelFailure, ex.Error);
        Assert.Contains("sha256", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OpenWeightsAsync_WeightsBlobDeleted_ThrowsModelFailure()
    {
        var store = Store();
        var stored = await store.UploadAsync(ModelStoreContract.Manifest("m"), new MemoryStream([1, 2, 3]), default);
        await store.Container.DeleteBlobAsync("m/1/model.onnx");

        var ex = await Assert.ThrowsAsync<InferenceException>(async () => await store.OpenWeightsAsync(stored, default));

        Assert.Equal(InferenceError.ModelFailure, ex.Error);
        Assert.Contains("missing", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetManifestAsync_NewestVersionHasNoManifestYet_ReturnsPreviousVersion()
    {
        var store = Store();
        await store.UploadAsync(ModelStoreContract.Manifest("m", "2"), new MemoryStream([1]), default);
        // An upload of version 10 in progress: weights there, manifest not yet.
        await store.Container.GetBlobClient("m/10/model.onnx").UploadAsync(BinaryData.FromBytes([2]));

        var latest = await store.GetManifestAsync("m", null, default);

        Assert.Equal("2", latest?.Version);
        Assert.Single(await store.ListAsync(default));
    }

    [Fact]
    public async Task ListAsync_OneMalformedManifest_SkipsAndReportsIt()
    {
        var store = Store();
        await store.UploadAsync(ModelStoreContract.Manifest("good", "1"), new MemoryStream([1]), default);
        await store.Container.GetBlobClient("broken/3/manifest.json").UploadAsync(BinaryData.FromString("{ \"name\": "));

        var listing = await store.ListAsync(default);

        Assert.Equal("good", Assert.Single(listing).Name);
        var invalid = Assert.Single(listing.Invalid);
        Assert.Equal(("broken", "3"), (invalid.Model, invalid.Version));
        Assert.StartsWith("invalid model manifest", invalid.Error);
        await Assert.ThrowsAsync<InvalidDataException>(async () => await store.GetManifestAsync("broken", "3", default));
    }

    [Fact]
    public async Task CreateContainerClient_AzuriteCheckingApiVersions_PinsAVersionItAccepts()
    {
        var strict = new AzuriteServer { SkipApiVersionCheck = false };
        await strict.InitializeAsync();
        try
        {
            var options = new BlobModelStoreOptions { ConnectionString = strict.ConnectionString, Container = AzuriteCollection.NewContainerName() };
            // The SDK's default version is newer than Azurite 3.37 accepts: the reason for the pin.
            var unpinned = new BlobServiceClient(strict.ConnectionString, new BlobClientOptions { Retry = { MaxRetries = 0 } });
            var rejected = await Assert.ThrowsAsync<RequestFailedException>(() => unpinned.GetBlobContainerClient(options.Container).ExistsAsync());
            Assert.Equal(400, rejected.Status);

            var store = new BlobModelStore(options);
            var stored = await store.UploadAsync(ModelStoreContract.Manifest("m"), new MemoryStream([1, 2, 3]), default);

            Assert.Equal(stored.Sha256, (await store.GetManifestAsync("m", null, default))?.Sha256);
        }
        finally
        {
            await strict.DisposeAsync();
        }
    }
}

/// <summary>Storage that does not answer: every call ends as <c>Unavailable</c> (503 with Retry-After), fast.</summary>
public sealed class BlobModelStoreUnavailableTests
{
    private static BlobModelStore DownStore()
    {
        // A port that was free a moment ago: connections are refused.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return new BlobModelStore(new BlobModelStoreOptions
        {
            ConnectionString = $"DefaultEndpointsProtocol=http;AccountName={AzuriteServer.AccountName};AccountKey={AzuriteServer.AccountKey};BlobEndpoint=http://127.0.0.1:{port}/{AzuriteServer.AccountName};",
            MaxRetries = 1,
            RetryDelay = TimeSpan.FromMilliseconds(10),
            NetworkTimeout = TimeSpan.FromSeconds(2),
        });
    }

    public static TheoryData<string> Operations => ["list", "latest", "version", "open", "upload"];

    [Theory]
    [MemberData(nameof(Operations))]
    public async Task Operation_StorageDown_ThrowsUnavailableWithRetryAfter(string operation)
    {
        var store = DownStore();
        var manifest = ModelStoreContract.Manifest("m") with { Sha256 = new string('0', 64) };
        Func<Task> call = operation switch
        {
            "list" => async () => await store.ListAsync(default),
            "latest" => async () => await store.GetManifestAsync("m", null, default),
            "version" => async () => await store.GetManifestAsync("m", "1", default),
            "open" => async () => await store.OpenWeightsAsync(manifest, default),
            _ => async () => await store.UploadAsync(manifest, new MemoryStream([1, 2, 3]), default),
        };

        var ex = await Assert.ThrowsAsync<InferenceException>(call);

        Assert.Equal(InferenceError.Unavailable, ex.Error);
        Assert.Equal(BlobModelStore.RetryAfterSeconds, ex.RetryAfterSeconds);
        Assert.Contains("unavailable", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(AzuriteServer.AccountKey, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ListAsync_CallerCancels_ThrowsOperationCanceled()
    {
        var store = DownStore();
        using var cancel = new CancellationTokenSource();
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await store.ListAsync(cancel.Token));
    }
}
