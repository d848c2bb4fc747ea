using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Models;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Models;

public sealed class ModelCatalogTests : IDisposable
{
    private readonly TempModelStore _models = new();
    private readonly FakeTimeProvider _time = new();

    public void Dispose() => _models.Dispose();

    private void WriteManifest(string model, string version, string json)
    {
        var dir = Path.Combine(_models.Store.Root, model, version);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, FolderModelStore.ManifestFileName), json);
    }

    [Fact]
    public async Task FolderStoreListAsync_OneMalformedManifest_SkipsAndReportsItWithoutAPath()
    {
        _models.Add("good");
        WriteManifest("broken", "1", "{ \"name\": \"broken\", ");
        WriteManifest("partial", "2", "{ \"name\": \"partial\" }");

        var listing = await _models.Store.ListAsync(default);

        Assert.Equal("good", Assert.Single(listing).Name);
        Assert.Equal([("broken", "1"), ("partial", "2")], listing.Invalid.Select(i => (i.Model, i.Version)).Order());
        Assert.All(listing.Invalid, i => Assert.StartsWith("invalid model manifest", i.Error));
        Assert.All(listing.Invalid, i => Assert.DoesNotContain(_models.Root, i.Error));
    }

    [Fact]
    public async Task GetAsync_MalformedManifest_IsAModelFailureOfThatModelOnly()
    {
        _models.Add("good");
        WriteManifest("broken", "1", "not json");
        var catalog = new ModelCatalog(_models.Store, _time);

        var ex = await Assert.ThrowsAsync<InferenceException>(() => catalog.GetAsync("broken", null, default).AsTask());

        Assert.Equal(InferenceError.ModelFailure, ex.Error);
        Assert.Contains("manifest is invalid", ex.Message);
        Assert.Equal("good", (await catalog.GetAsync("good", null, default)).Name);
    }

    [Fact]
    public async Task ListAsync_IsCachedForTheRefreshPeriod()
    {
        _models.Add("a");
        var catalog = new ModelCatalog(_models.Store, _time, TimeSpan.FromSeconds(10));
        Assert.Equal(["a"], (await catalog.ListAsync(default)).Select(m => m.Name));

        _models.Add("b");
        _time.Advance(TimeSpan.FromSeconds(9));
        Assert.Equal(["a"], (await catalog.ListAsync(default)).Select(m => m.Name));

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(["a", "b"], (await catalog.ListAsync(default)).Select(m => m.Name).Order());
    }

    [Fact]
    public async Task ListAsync_ALookupFindsAModelTheListLacks_RefreshesAtOnce()
    {
        _models.Add("a");
        var catalog = new ModelCatalog(_models.Store, _time, TimeSpan.FromMinutes(10));
        await catalog.ListAsync(default);

        _models.Add("b");
        await catalog.GetAsync("b", null, default);

        Assert.Equal(["a", "b"], (await catalog.ListAsync(default)).Select(m => m.Name).Order());
    }
}
