using Microsoft.Extensions.Logging.Abstractions;
using ServerlessInference.Generation;
using ServerlessInference.Models;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Generation;

public sealed class StoreDraftModelSourceTests : IDisposable
{
    private readonly TempModelStore _models = new();

    public void Dispose() => _models.Dispose();

    [Fact]
    public async Task FindAsync_ModelInTheStore_GivesItsLatestVersionAndVerifiedLocalWeights()
    {
        _models.Add("draft", size: 64, version: "1");
        var latest = _models.Add("draft", size: 80, version: "2");
        var source = new StoreDraftModelSource(_models.Store, new WeightsCache(_models.Store, _models.CacheDirectory, NullLogger<WeightsCache>.Instance));

        var found = await source.FindAsync("draft", CancellationToken.None);

        Assert.NotNull(found);
        Assert.Equal(latest.Key, found.Value.Manifest.Key);
        Assert.Equal(80, new FileInfo(found.Value.WeightsPath).Length);
        Assert.StartsWith(_models.CacheDirectory, found.Value.WeightsPath, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FindAsync_UnknownModel_GivesNull()
    {
        var source = new StoreDraftModelSource(_models.Store, new WeightsCache(_models.Store, _models.CacheDirectory, NullLogger<WeightsCache>.Instance));

        Assert.Null(await source.FindAsync("nope", CancellationToken.None));
    }
}
