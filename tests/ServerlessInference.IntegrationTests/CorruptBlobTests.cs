using System.Net;
using Azure.Storage.Blobs.Models;
using ServerlessInference.Azure.Models;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;
using Xunit.Abstractions;

namespace ServerlessInference.IntegrationTests;

[Collection(PlatformCollection.Name)]
[Trait("Category", "Integration")]
public sealed class CorruptBlobTests(PlatformFixture fixture, ITestOutputHelper output)
{
    private static readonly int[] LayerSizes = [512, 16];

    [Fact]
    public async Task WeightsBlobFailsItsSha256_JobFailsWithAClearError_AndTheWorkersStayHealthy()
    {
        var host = fixture.Host;
        using var client = host.CreateClient();
        var workers = await host.WaitForWorkersAsync(client, PlatformFixture.StartTimeout);

        // A small model uploaded through the Blob store (which records its sha256 in the manifest and blob metadata)...
        var name = "corrupt-" + Guid.NewGuid().ToString("N")[..8];
        var store = new BlobModelStore(new BlobModelStoreOptions { ConnectionString = fixture.Azurite.ConnectionString });
        ModelManifest manifest;
        using (var weights = new MemoryStream(MlpBenchModel.Build(LayerSizes, seed: 7), writable: false))
        {
            manifest = await store.UploadAsync(MlpBenchModel.Manifest(layerSizes: LayerSizes) with { Name = name }, weights, CancellationToken.None);
        }

        // ...whose weights blob is then replaced by other bytes of the same size, its sha256 metadata left as it was
        // (bit rot or tampering: the blob still claims the manifest's hash).
        var corrupt = MlpBenchModel.Build(LayerSizes, seed: 8);
        Assert.Equal(manifest.SizeBytes, corrupt.Length);
        var blob = store.Container.GetBlobClient($"{name}/{manifest.Version}/{manifest.File}");
        await blob.UploadAsync(BinaryData.FromBytes(corrupt), new BlobUploadOptions
        {
            Metadata = new Dictionary<string, string> { [BlobModelStore.WeightsShaMetadataKey] = manifest.Sha256 },
        });
        Assert.Equal(corrupt.Length, (await blob.GetPropertiesAsync()).Value.ContentLength);

        // The job fails, promptly and once (not retried to the dead-letter limit), saying why.
        for (var attempt = 0; attempt < 2; attempt++)
        {
            using var response = await client.SendAsync(Oip.Infer(name, Oip.MlpRequest(PlatformFixture.MlpInput(51), $"corrupt-{attempt}")));
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
            var error = await Oip.ReadErrorAsync(response);
            output.WriteLine($"attempt {attempt}: {error}");
            Assert.Contains("sha256", error, StringComparison.Ordinal);
            Assert.Contains(manifest.Key, error, StringComparison.Ordinal);
            Assert.Contains(manifest.Sha256, error, StringComparison.Ordinal);
            Assert.DoesNotContain("dead-lettered", error, StringComparison.Ordinal);
            var jobId = response.Headers.GetValues("X-Job-Id").Single();
            using var poll = await client.GetAsync($"/jobs/{jobId}");
            var job = await Oip.ReadJsonAsync(poll);
            Assert.Equal("failed", job.GetProperty("status").GetString());
            Assert.Equal(error, job.GetProperty("error").GetString());
        }

        // The corrupt bytes never entered the workers' weights cache.
        var cached = Directory.Exists(host.CacheDirectory) ? Directory.GetFiles(host.CacheDirectory) : [];
        Assert.DoesNotContain(cached, f => Path.GetFileName(f).StartsWith(manifest.Sha256, StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(cached, f => f.EndsWith(".part", StringComparison.Ordinal));

        // The same worker processes go on serving: still running, and mlp-bench answers correctly.
        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            using var response = await client.SendAsync(Oip.Infer(MlpBenchModel.Name, Oip.MlpRequest(PlatformFixture.MlpInput(52 + i), $"after-{i}")));
            return (Seed: 52 + i, Response: await Oip.ReadResponseAsync(response));
        }));
        foreach (var (seed, response) in answers)
        {
            Oip.AssertClose(fixture.ExpectedMlp(seed), Assert.Single(response.Outputs).AsSpan<float>());
        }

        Assert.Equal(workers.OrderBy(w => w.Id), host.Orchestrator.Workers.OrderBy(w => w.Id));
        Assert.All(workers, w => Assert.True(PlatformHost.IsWorkerProcess(w.ProcessId), $"worker {w.Id} (pid {w.ProcessId}) is gone"));
        var status = await PlatformHost.GetStatusAsync(client);
        var ids = workers.Select(w => w.Id).ToHashSet();
        var live = status.GetProperty("workers").EnumerateArray().Where(w => ids.Contains(w.GetProperty("id").GetString()!)).ToList();
        Assert.Equal(2, live.Count);
        Assert.All(live, w => Assert.Equal("running", w.GetProperty("state").GetString()));
        Assert.DoesNotContain(live, w => w.GetProperty("warm_models").EnumerateArray().Any(m => m.GetProperty("model").GetString() == name));
        Assert.Empty(await host.Queue.ReadDeadLettersAsync(10, CancellationToken.None));
    }
}
