using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx;

/// <summary>Writes a tensor model's manifest from the ONNX file itself: ONNX Runtime's session metadata gives the
/// inputs and outputs (names, datatypes, shapes), and whether dim 0 of every one of them may vary (dynamic batch).</summary>
/// <remarks>The manifest is then checked against the same session exactly as a worker will check it
/// (<see cref="ModelSignature"/>), so a manifest written here loads. Sha256 and size are left for
/// <see cref="IModelStore.UploadAsync"/> to fill in. A decoder with a KV cache (<c>input_ids</c> and
/// <c>past_key_values.*</c>) is refused: a text-generation manifest needs a tokenizer and a chat template that the
/// graph does not hold.</remarks>
public static class ManifestInference
{
    /// <summary>The batch size a dynamic-batch model gets unless the caller says otherwise (the demo models' too).</summary>
    public const int DefaultMaxBatchSize = 32;

    /// <summary>The manifest of model <paramref name="name"/> version <paramref name="version"/> whose weights are
    /// <paramref name="path"/>.</summary>
    /// <param name="maxBatchSize">Rows per engine call of a dynamic-batch model (null: <see cref="DefaultMaxBatchSize"/>);
    /// a fixed-batch model always gets 1.</param>
    /// <exception cref="InferenceException"><see cref="InferenceError.BadRequest"/>: not an ONNX model ONNX Runtime can
    /// load, a tensor type the protocol cannot carry, or a text-generation model.</exception>
    public static ModelManifest Infer(string path, string name, string version, int? maxBatchSize = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (maxBatchSize is < 1)
        {
            throw new InferenceException(InferenceError.BadRequest, $"max batch size must be at least 1, got {maxBatchSize}");
        }

        // Errors only: a command line's stderr is for its own one-line errors, not ONNX Runtime's warnings.
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        InferenceSession session;
        try
        {
            session = new InferenceSession(path, options);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new InferenceException(InferenceError.BadRequest, $"'{Path.GetFileName(path)}' is not an ONNX model that ONNX Runtime can load: {FirstLine(ex.Message)}", ex);
        }

        using (session)
        {
            if (session.InputMetadata.ContainsKey("input_ids") && session.InputNames.Any(n => n.StartsWith("past_key_values.", StringComparison.Ordinal)))
            {
                throw new InferenceException(InferenceError.BadRequest,
                    $"'{Path.GetFileName(path)}' is a decoder with a KV cache: a text-generation manifest needs its tokenizer, end tokens and chat template, so write it by hand (README, \"Serving your own model\")");
            }

            var inputs = session.InputNames.Select(n => Spec("input", n, session.InputMetadata[n])).ToList();
            var outputs = session.OutputNames.Select(n => Spec("output", n, session.OutputMetadata[n])).ToList();

            // Dynamic batch: every input leaves dim 0 open, and every output has a dim 0 to split along.
            var dynamic = inputs.Count > 0
                && inputs.All(i => i.Shape.Length > 0 && i.Shape[0] < 0)
                && outputs.All(o => o.Shape.Length > 0);
            if (dynamic)
            {
                outputs = [.. outputs.Select(o => o with { Shape = [-1, .. o.Shape[1..]] })];
            }

            var manifest = new ModelManifest
            {
                Name = name,
                Version = version,
                Sha256 = "",
                SizeBytes = 0,
                Inputs = inputs,
                Outputs = outputs,
                DynamicBatch = dynamic,
                MaxBatchSize = dynamic ? maxBatchSize ?? DefaultMaxBatchSize : 1,
            };

            try
            {
                ModelSignature.Create(manifest, session);
            }
            catch (InferenceException ex)
            {
                throw new InferenceException(InferenceError.BadRequest, ex.Message, ex);
            }

            return manifest;
        }
    }

    private static TensorSpec Spec(string kind, string name, NodeMetadata metadata)
    {
        if (!metadata.IsTensor)
        {
            throw new InferenceException(InferenceError.BadRequest, $"{kind} '{name}' is a {metadata.OnnxValueType}, not a tensor; the protocol carries tensors only");
        }

        if (!TensorTypes.TryToDatatype(metadata.ElementDataType, out var datatype))
        {
            throw new InferenceException(InferenceError.BadRequest, $"{kind} '{name}' has element type {metadata.ElementDataType}, which the protocol cannot carry");
        }

        // ONNX Runtime reports a symbolic or unknown dim as -1, as the manifest writes it.
        return new TensorSpec(name, datatype, Array.ConvertAll(metadata.Dimensions, d => d < 0 ? -1L : d));
    }

    private static string FirstLine(string message) => message.Split('\n')[0].Trim();
}
