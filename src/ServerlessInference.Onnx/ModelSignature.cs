using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx;

/// <summary>One input or output as the engine binds it: manifest name and datatype, ONNX element type, and the dims
/// both sides agree on (<c>-1</c> where either leaves a dim open, or for the batch dim of a dynamic-batch model).</summary>
internal sealed record TensorBinding(string Name, TensorDatatype Datatype, TensorElementType ElementType, long[] Dims)
{
    /// <summary>True when the output size is known before the run once the batch dim is set, so the engine can
    /// hand ONNX Runtime a buffer to write into.</summary>
    public bool FixedAfterBatchDim(bool dynamicBatch)
    {
        for (var d = dynamicBatch ? 1 : 0; d < Dims.Length; d++)
        {
            if (Dims[d] < 0)
            {
                return false;
            }
        }

        return Datatype != TensorDatatype.Bytes && (!dynamicBatch || Dims.Length > 0);
    }
}

/// <summary>The manifest's inputs and outputs checked against a session's, in session input order.</summary>
internal sealed class ModelSignature
{
    private ModelSignature(TensorBinding[] inputs, TensorBinding[] outputs)
    {
        Inputs = inputs;
        Outputs = outputs;
        InputNames = Array.ConvertAll(inputs, i => i.Name);
    }

    /// <summary>Model inputs in the session's order.</summary>
    public TensorBinding[] Inputs { get; }

    /// <summary>Outputs in the manifest's order.</summary>
    public TensorBinding[] Outputs { get; }

    public string[] InputNames { get; }

    /// <summary>Checks <paramref name="manifest"/> against the session's metadata.</summary>
    /// <exception cref="InferenceException"><see cref="InferenceError.ModelFailure"/> with every disagreement.</exception>
    public static ModelSignature Create(ModelManifest manifest, InferenceSession session)
    {
        var problems = new List<string>();
        if (manifest.DynamicBatch && manifest.MaxBatchSize < 1)
        {
            problems.Add($"max batch size is {manifest.MaxBatchSize}; a dynamic-batch model needs at least 1");
        }

        var inputs = new List<TensorBinding>();
        foreach (var name in session.InputNames)
        {
            var spec = manifest.Inputs.FirstOrDefault(s => s.Name == name);
            if (spec is null)
            {
                problems.Add($"model input '{name}' is missing from the manifest");
                continue;
            }

            if (Bind("input", spec, session.InputMetadata[name], manifest.DynamicBatch, problems) is { } binding)
            {
                inputs.Add(binding);
            }
        }

        foreach (var spec in manifest.Inputs.Where(s => !session.InputMetadata.ContainsKey(s.Name)))
        {
            problems.Add($"manifest input '{spec.Name}' is not an input of the model (model inputs: {string.Join(", ", session.InputNames)})");
        }

        var outputs = new List<TensorBinding>();
        foreach (var spec in manifest.Outputs)
        {
            if (!session.OutputMetadata.TryGetValue(spec.Name, out var metadata))
            {
                problems.Add($"manifest output '{spec.Name}' is not an output of the model (model outputs: {string.Join(", ", session.OutputNames)})");
                continue;
            }

            if (Bind("output", spec, metadata, manifest.DynamicBatch, problems) is { } binding)
            {
                outputs.Add(binding);
            }
        }

        if (problems.Count > 0)
        {
            throw new InferenceException(InferenceError.ModelFailure,
                $"model '{manifest.Key}' does not match its manifest: {string.Join("; ", problems)}");
        }

        return new ModelSignature([.. inputs], [.. outputs]);
    }

    private static TensorBinding? Bind(string kind, TensorSpec spec, NodeMetadata metadata, bool dynamicBatch, List<string> problems)
    {
        if (!metadata.IsTensor)
        {
            problems.Add($"{kind} '{spec.Name}' is a {metadata.OnnxValueType}, not a tensor");
            return null;
        }

        var elementType = metadata.ElementDataType;
        if (!TensorTypes.TryToDatatype(elementType, out var modelDatatype))
        {
            problems.Add($"{kind} '{spec.Name}' has element type {elementType}, which the protocol cannot carry");
            return null;
        }

        if (modelDatatype != spec.Datatype)
        {
            problems.Add($"{kind} '{spec.Name}' is {modelDatatype.Name()} in the model but {spec.Datatype.Name()} in the manifest");
            return null;
        }

        var modelDims = Array.ConvertAll(metadata.Dimensions, d => (long)d);
        if (kind == "output" && modelDims.Length == 0 && spec.Shape.Length > 0)
        {
            // Shape inference could not tell the output's rank; the manifest's shape is all there is.
            modelDims = Enumerable.Repeat(-1L, spec.Shape.Length).ToArray();
        }

        if (modelDims.Length != spec.Shape.Length)
        {
            problems.Add($"{kind} '{spec.Name}' has shape {Format(modelDims)} in the model but {Format(spec.Shape)} in the manifest");
            return null;
        }

        var dims = new long[modelDims.Length];
        for (var d = 0; d < dims.Length; d++)
        {
            var model = modelDims[d];
            var manifest = spec.Shape[d];
            if (model >= 0 && manifest >= 0 && model != manifest)
            {
                problems.Add($"{kind} '{spec.Name}' has shape {Format(modelDims)} in the model but {Format(spec.Shape)} in the manifest");
                return null;
            }

            dims[d] = manifest >= 0 ? manifest : model;
        }

        if (dynamicBatch)
        {
            if (dims.Length == 0 || (kind == "input" && modelDims[0] >= 0))
            {
                problems.Add($"{kind} '{spec.Name}' has shape {Format(modelDims)}: a dynamic-batch model needs a variable dim 0");
                return null;
            }

            dims[0] = -1;
        }

        return new TensorBinding(spec.Name, spec.Datatype, elementType, dims);
    }

    public static string Format(ReadOnlySpan<long> shape) => $"[{string.Join(",", shape.ToArray())}]";
}
