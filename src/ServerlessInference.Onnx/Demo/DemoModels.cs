using ServerlessInference.Models;

namespace ServerlessInference.Onnx.Demo;

/// <summary>The models a fresh platform starts with: <see cref="MlpBenchModel"/>, <see cref="ResNet18Model"/>, and the
/// text-generation models <see cref="DecoderLmModel.TinyLm"/>, <see cref="DecoderLmModel.LmBench"/> and its draft
/// <see cref="DecoderLmModel.LmBenchDraft"/> (for speculative decoding).</summary>
public static class DemoModels
{
    /// <summary>Uploads each demo model whose version is not in <paramref name="store"/> yet; the store computes
    /// checksums and sizes. Safe to call on every start-up.</summary>
    /// <exception cref="FileNotFoundException">ResNet18 must be uploaded and its file is not beside the app.</exception>
    public static async Task SeedAsync(IModelStore store, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (await store.GetManifestAsync(MlpBenchModel.Name, MlpBenchModel.Version, cancellationToken).ConfigureAwait(false) is null)
        {
            using var weights = new MemoryStream(MlpBenchModel.Build(), writable: false);
            await store.UploadAsync(MlpBenchModel.Manifest(), weights, cancellationToken).ConfigureAwait(false);
        }

        if (await store.GetManifestAsync(ResNet18Model.Name, ResNet18Model.Version, cancellationToken).ConfigureAwait(false) is null)
        {
            await using var weights = new FileStream(ResNet18Model.FindFile(), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
            await store.UploadAsync(ResNet18Model.Manifest(), weights, cancellationToken).ConfigureAwait(false);
        }

        foreach (var config in new[] { DecoderLmModel.TinyLm, DecoderLmModel.LmBench, DecoderLmModel.LmBenchDraft })
        {
            if (await store.GetManifestAsync(config.Name, DecoderLmModel.Version, cancellationToken).ConfigureAwait(false) is null)
            {
                using var weights = new MemoryStream(DecoderLmModel.Build(config), writable: false);
                await store.UploadAsync(DecoderLmModel.Manifest(config), weights, cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
