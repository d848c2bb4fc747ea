using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.Onnx.Tests.Demo;

public sealed class DemoModelsTests
{
    [Fact]
    public async Task SeedAsync_EmptyStore_UploadsEveryDemoModel()
    {
        var store = new RecordingStore();

        await DemoModels.SeedAsync(store, CancellationToken.None);

        Assert.Equal(["mlp-bench/1", "resnet18/1", "tiny-lm/1", "lm-bench/1", "lm-bench-draft/1"], store.Uploads.Select(u => u.Manifest.Key));
        Assert.Equal(new FileInfo(ResNet18Model.FindFile()).Length, store.Uploads[1].Bytes);
        Assert.True(store.Uploads[0].Bytes > 30_000_000);
        Assert.InRange(store.Uploads[2].Bytes, 100_000, 2_000_000);
        Assert.True(store.Uploads[3].Bytes > 50_000_000);
        Assert.InRange(store.Uploads[4].Bytes, 10_000_000, store.Uploads[3].Bytes / 2); // one block of four, embeddings and head
        Assert.All(store.Uploads.Skip(2), u => Assert.True(u.Manifest.IsTextGeneration));
    }

    [Fact]
    public async Task SeedAsync_ModelsPresent_UploadsNothing()
    {
        var store = new RecordingStore();
        store.Present.Add(MlpBenchModel.Manifest());
        store.Present.Add(ResNet18Model.Manifest());
        store.Present.Add(DecoderLmModel.Manifest(DecoderLmModel.TinyLm));
        store.Present.Add(DecoderLmModel.Manifest(DecoderLmModel.LmBench));
        store.Present.Add(DecoderLmModel.Manifest(DecoderLmModel.LmBenchDraft));

        await DemoModels.SeedAsync(store, CancellationToken.None);

        Assert.Empty(store.Uploads);
    }

    private sealed class RecordingStore : IModelStore
    {
        public List<ModelManifest> Present { get; } = [];

        public List<(ModelManifest Manifest, long Bytes)> Uploads { get; } = [];

        public ValueTask<ModelListing> ListAsync(CancellationToken cancellationToken) => new(new ModelListing([.. Present], []));

        public ValueTask<ModelManifest?> GetManifestAsync(string name, string? version, CancellationToken cancellationToken) =>
            new(Present.FirstOrDefault(m => m.Name == name && (version is null || m.Version == version)));

        public ValueTask<Stream> OpenWeightsAsync(ModelManifest manifest, CancellationToken cancellationToken) => throw new NotSupportedException();

        public async ValueTask<ModelManifest> UploadAsync(ModelManifest manifest, Stream weights, CancellationToken cancellationToken)
        {
            await weights.CopyToAsync(Stream.Null, cancellationToken);
            Uploads.Add((manifest, weights.Position));
            return manifest;
        }

        public ValueTask<IReadOnlyList<ModelManifest>> DeleteAsync(string name, string? version, CancellationToken cancellationToken) =>
            throw new NotSupportedException();
    }
}
