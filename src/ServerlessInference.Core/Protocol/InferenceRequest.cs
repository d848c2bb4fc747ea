namespace ServerlessInference.Protocol;

/// <summary>An OIP v2 inference request: <c>{id, parameters, inputs, outputs}</c>.</summary>
public sealed class InferenceRequest
{
    public string? Id { get; set; }

    public Dictionary<string, object>? Parameters { get; set; }

    public required IReadOnlyList<InferTensor> Inputs { get; init; }

    /// <summary>The outputs the client asked for; null means all of them.</summary>
    public IReadOnlyList<RequestedOutput>? Outputs { get; init; }

    /// <summary>True when the client asked for binary output tensors (Triton's <c>binary_data_output</c>
    /// on the request or <c>binary_data</c> on any requested output).</summary>
    public bool WantsBinaryOutput(string outputName)
    {
        if (Outputs is not null)
        {
            foreach (var output in Outputs)
            {
                if (output.Name == outputName && output.Parameters is not null
                    && output.Parameters.TryGetValue(ParameterNames.BinaryData, out var value))
                {
                    return value is true;
                }
            }
        }

        return Parameters is not null
            && Parameters.TryGetValue(ParameterNames.BinaryDataOutput, out var all)
            && all is true;
    }
}

/// <summary>An entry of a request's <c>outputs</c> list.</summary>
public sealed class RequestedOutput
{
    public required string Name { get; init; }

    public Dictionary<string, object>? Parameters { get; set; }
}

/// <summary>An OIP v2 inference response.</summary>
public sealed class InferenceResponse
{
    public required string ModelName { get; init; }

    public string? ModelVersion { get; init; }

    public string? Id { get; set; }

    public Dictionary<string, object>? Parameters { get; set; }

    public required IReadOnlyList<InferTensor> Outputs { get; init; }
}

/// <summary>Parameter names of Triton's binary tensor data extension.</summary>
public static class ParameterNames
{
    public const string BinaryDataSize = "binary_data_size";
    public const string BinaryData = "binary_data";
    public const string BinaryDataOutput = "binary_data_output";

    /// <summary>HTTP header that carries the length of the JSON part of a binary body.</summary>
    public const string InferenceHeaderContentLength = "Inference-Header-Content-Length";
}
