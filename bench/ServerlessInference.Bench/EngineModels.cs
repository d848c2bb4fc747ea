using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Generation;
using ServerlessInference.Models;
using ServerlessInference.Onnx;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.Bench;

/// <summary>The in-process benches' one way to load a text-generation model: its own ONNX Runtime engine (CPU unless
/// <paramref name="engine"/> says otherwise) with the given generation settings.</summary>
internal static class EngineModels
{
    /// <summary>KV budget of the in-process benches: room for 32 long sequences, so no bench waits on it.</summary>
    public const long KvBudget = 2L << 30;

    public static async Task<OnnxTextGenerationModel> LoadAsync(ModelManifest manifest, string path, TextGenerationOptions generation,
        IDraftModelSource? drafts = null, OnnxEngineOptions? engine = null)
    {
        var onnx = new OnnxInferenceEngine(
            Options.Create(engine ?? new OnnxEngineOptions { ExecutionProvider = OnnxExecutionProvider.Cpu }),
            NullLogger<OnnxInferenceEngine>.Instance,
            Options.Create(generation),
            draftModels: drafts);
        return (OnnxTextGenerationModel)await onnx.LoadAsync(manifest, path, CancellationToken.None).ConfigureAwait(false);
    }
}
