using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx.Tests.Demo;

/// <summary>Checks a demo model's manifest against what ONNX Runtime reads from the model itself.</summary>
internal static class ManifestAssert
{
    /// <summary>Same input and output names and shapes (-1 for a symbolic dimension), and a batch claim the model
    /// allows: dynamic only when dimension 0 of every input and output is symbolic, else at most that fixed size.</summary>
    public static void MatchesSession(ModelManifest manifest, InferenceSession session)
    {
        AssertSame(manifest.Inputs, session.InputMetadata);
        AssertSame(manifest.Outputs, session.OutputMetadata);

        var batchDims = session.InputMetadata.Values.Concat(session.OutputMetadata.Values).Select(m => m.Dimensions[0]).ToList();
        Assert.Equal(batchDims.All(d => d == -1), manifest.DynamicBatch);
        if (!manifest.DynamicBatch)
        {
            Assert.InRange(manifest.MaxBatchSize, 1, batchDims.Min());
        }
    }

    private static void AssertSame(IReadOnlyList<TensorSpec> specs, IReadOnlyDictionary<string, NodeMetadata> metadata)
    {
        Assert.Equal(metadata.Keys.Order(StringComparer.Ordinal), specs.Select(s => s.Name).Order(StringComparer.Ordinal));
        foreach (var spec in specs)
        {
            Assert.Equal(metadata[spec.Name].Dimensions.Select(d => (long)d), spec.Shape);
        }
    }
}
