using ServerlessInference.Models;

namespace ServerlessInference.Protocol;

/// <summary>Checks a parsed request against the model it targets, so bad input is answered with a 400 and never enqueued.</summary>
public static class RequestValidator
{
    /// <summary>Throws <see cref="InferenceException"/> (BadRequest) naming the first problem found: unknown, duplicate
    /// or missing inputs; datatype, rank or fixed-dim mismatches; batch size out of range or differing between inputs;
    /// empty tensors; data that does not match the shape; unknown or duplicate requested outputs.</summary>
    /// <remarks>Dim 0 of a <see cref="ModelManifest.DynamicBatch"/> model whose manifest says -1 is the batch dim:
    /// it must lie in [1, <see cref="ModelManifest.MaxBatchSize"/>] and be equal across the inputs. Other -1 dims
    /// accept any positive size.</remarks>
    public static void Validate(InferenceRequest request, ModelManifest manifest)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        string? batchInput = null;
        long batchSize = 0;
        foreach (var input in request.Inputs)
        {
            var spec = Find(manifest.Inputs, input.Name)
                ?? throw Bad($"unknown input '{input.Name}'; model '{manifest.Name}' has inputs: {Names(manifest.Inputs)}");
            if (!seen.Add(input.Name))
            {
                throw Bad($"input '{input.Name}' appears more than once");
            }

            if (input.Datatype != spec.Datatype)
            {
                throw Bad($"input '{input.Name}' has datatype {input.Datatype.Name()}, model expects {spec.Datatype.Name()}");
            }

            if (input.Shape.Length != spec.Shape.Length)
            {
                throw Bad($"input '{input.Name}' has shape {Format(input.Shape)} (rank {input.Shape.Length}), model expects rank {spec.Shape.Length} {Format(spec.Shape)}");
            }

            for (var i = 0; i < spec.Shape.Length; i++)
            {
                var dim = input.Shape[i];
                var expected = spec.Shape[i];
                if (i == 0 && expected < 0 && manifest.DynamicBatch)
                {
                    if (dim < 1)
                    {
                        throw Bad($"input '{input.Name}' has batch size {dim}; it must be at least 1");
                    }

                    if (dim > manifest.MaxBatchSize)
                    {
                        throw Bad($"input '{input.Name}' has batch size {dim}, more than the max batch size {manifest.MaxBatchSize} of model '{manifest.Name}'");
                    }

                    if (batchInput is null)
                    {
                        batchInput = input.Name;
                        batchSize = dim;
                    }
                    else if (dim != batchSize)
                    {
                        throw Bad($"inputs disagree on the batch size: '{batchInput}' has {batchSize}, '{input.Name}' has {dim}");
                    }
                }
                else if (expected >= 0 && dim != expected)
                {
                    throw Bad($"input '{input.Name}' dim {i} is {dim}, model expects {expected} (shape {Format(spec.Shape)})");
                }
            }

            long count;
            try
            {
                count = input.ElementCount;
            }
            catch (InferenceException e)
            {
                throw Bad($"input '{input.Name}': {e.Message}");
            }

            if (count == 0)
            {
                throw Bad($"input '{input.Name}' has no elements (shape {Format(input.Shape)})");
            }

            if (input.Datatype != TensorDatatype.Bytes && input.Data.Length % input.Datatype.ElementSize() != 0)
            {
                throw Bad($"input '{input.Name}' has {input.Data.Length} bytes of data, not a whole number of {input.Datatype.Name()} elements");
            }

            if (input.DataElementCount != count)
            {
                throw Bad($"input '{input.Name}' holds {input.DataElementCount} elements, but shape {Format(input.Shape)} needs {count}");
            }
        }

        foreach (var spec in manifest.Inputs)
        {
            if (!seen.Contains(spec.Name))
            {
                throw Bad($"missing input '{spec.Name}'; model '{manifest.Name}' expects: {Names(manifest.Inputs)}");
            }
        }

        if (request.Outputs is null)
        {
            return;
        }

        var requested = new HashSet<string>(StringComparer.Ordinal);
        foreach (var output in request.Outputs)
        {
            if (Find(manifest.Outputs, output.Name) is null)
            {
                throw Bad($"unknown output '{output.Name}'; model '{manifest.Name}' has outputs: {Names(manifest.Outputs)}");
            }

            if (!requested.Add(output.Name))
            {
                throw Bad($"output '{output.Name}' is requested more than once");
            }
        }
    }

    private static TensorSpec? Find(IReadOnlyList<TensorSpec> specs, string name)
    {
        foreach (var spec in specs)
        {
            if (spec.Name == name)
            {
                return spec;
            }
        }

        return null;
    }

    private static string Names(IReadOnlyList<TensorSpec> specs) => string.Join(", ", specs.Select(spec => spec.Name));

    private static string Format(long[] shape) => $"[{string.Join(",", shape)}]";

    private static InferenceException Bad(string message) => new(InferenceError.BadRequest, message);
}
