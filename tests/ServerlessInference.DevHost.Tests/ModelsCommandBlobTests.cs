using System.Security.Cryptography;
using ServerlessInference.Azure.Models;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Testing.Services;

namespace ServerlessInference.DevHost.Tests;

/// <summary><c>models quantize</c> against the Blob model store (Azurite): the variant is stored through the same
/// <see cref="IModelStore"/> upload as any model, with its own sha256.</summary>
[Trait("Category", "Integration")]
public sealed class ModelsCommandBlobTests(AzuriteServer azurite) : IClassFixture<AzuriteServer>
{
    private static readonly int[] Layers = [64, 96, 96, 8];

    [Fact]
    public async Task ModelsQuantize_BlobStore_StoresTheVariantBesideTheOriginalWithItsOwnSha()
    {
        var container = "q" + Guid.NewGuid().ToString("N")[..24];
        var store = new BlobModelStore(new BlobModelStoreOptions { ConnectionString = azurite.ConnectionString, Container = container });
        var source = await store.UploadAsync(MlpBenchModel.Manifest(layerSizes: Layers) with { Name = "mlp-blob" },
            new MemoryStream(MlpBenchModel.Build(Layers, seed: 11)), CancellationToken.None);
        var output = new StringWriter();
        var error = new StringWriter();

        var code = await ModelsCommand.RunAsync(
            ["models", "quantize", "mlp-blob", "--when-queue-depth-at-least", "4",
             "--Inference:ModelStore:Provider=Blob",
             $"--Inference:ModelStore:Blob:ConnectionString={azurite.ConnectionString}",
             $"--Inference:ModelStore:Blob:Container={container}"],
            output, error);

        Assert.True(code == 0, error.ToString());
        Assert.Contains("the Blob model store", output.ToString());
        var variant = await store.GetManifestAsync("mlp-blob", "1-int8", CancellationToken.None);
        Assert.NotNull(variant);
        Assert.Equal((ModelVariants.Int8, "1"), (variant.Variant, variant.SourceVersion));
        using var weights = new MemoryStream();
        await using (var stream = await store.OpenWeightsAsync(variant, CancellationToken.None))
        {
            await stream.CopyToAsync(weights);
        }

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(weights.ToArray())), variant.Sha256);
        Assert.NotEqual(source.Sha256, variant.Sha256);
        Assert.True(variant.SizeBytes < source.SizeBytes / 3, $"{variant.SizeBytes} from {source.SizeBytes}");
        var latest = await store.GetManifestAsync("mlp-blob", null, CancellationToken.None);
        Assert.Equal(("1", source.Sha256), (latest!.Version, latest.Sha256));
        Assert.Equal(4, latest.Variants![ModelVariants.Int8].WhenQueueDepthAtLeast);
    }
}
