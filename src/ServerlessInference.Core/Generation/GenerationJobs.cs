using System.Globalization;
using System.Text;
using System.Text.Json;

namespace ServerlessInference.Generation;

/// <summary>A generation as it travels on the queue and back: an OIP request with one <c>BYTES</c> input
/// <c>text_input</c> and the sampling settings as request parameters (the shape of the KServe/Triton generate
/// extension), and an OIP response with <c>text_output</c> and the usage as parameters. So every queue carries
/// generations unchanged, and <c>GET /jobs/{id}</c> shows them like any result.</summary>
public static class GenerationJobs
{
    public const string TextInput = "text_input";
    public const string TextOutput = "text_output";
    public const string MaxTokens = "max_tokens";
    public const string Temperature = "temperature";
    public const string TopK = "top_k";
    public const string TopP = "top_p";
    public const string RepetitionPenalty = "repetition_penalty";
    public const string Seed = "seed";
    public const string Stop = "stop";
    public const string PromptTokens = "prompt_tokens";
    public const string CompletionTokens = "completion_tokens";
    public const string FinishReasonName = "finish_reason";

    /// <summary>The queue payload of <paramref name="request"/>. Only text prompts travel: the routes refuse token-id prompts.</summary>
    public static InferenceRequest ToRequest(GenerationRequest request)
    {
        var parameters = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            [MaxTokens] = (long)request.MaxTokens,
            [Temperature] = (double)request.Sampling.Temperature,
            [TopK] = (long)request.Sampling.TopK,
            [TopP] = (double)request.Sampling.TopP,
            [RepetitionPenalty] = (double)request.Sampling.RepetitionPenalty,
        };
        if (request.Sampling.Seed is { } seed)
        {
            // A string: OIP numbers are doubles to some clients, and a 64-bit seed must survive exactly.
            parameters[Seed] = seed.ToString(CultureInfo.InvariantCulture);
        }

        if (request.Stop.Count > 0)
        {
            parameters[Stop] = JsonSerializer.Serialize(request.Stop, GenerationJson.Default.IReadOnlyListString);
        }

        return new InferenceRequest
        {
            Parameters = parameters,
            Inputs = [InferTensor.CreateBytes(TextInput, [1], [Encoding.UTF8.GetBytes(request.Prompt ?? "")])],
        };
    }

    /// <summary>The generation a queued request asks for.</summary>
    /// <exception cref="InferenceException">The request is not a generation (<see cref="InferenceError.BadRequest"/>,
    /// naming what is wrong).</exception>
    public static GenerationRequest FromRequest(InferenceRequest request)
    {
        var input = request.Inputs.FirstOrDefault(i => i.Name == TextInput);
        if (input is not { Datatype: TensorDatatype.Bytes, BytesData: { Count: 1 } texts })
        {
            throw new InferenceException(InferenceError.BadRequest, $"a text-generation model takes one BYTES input '{TextInput}' holding the prompt");
        }

        var p = request.Parameters;
        ulong? seed = null;
        if (OipParameters.TryGetString(p, Seed, out var seedText))
        {
            seed = ulong.TryParse(seedText, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed)
                ? parsed
                : throw new InferenceException(InferenceError.BadRequest, $"parameter '{Seed}' must be a non-negative integer");
        }
        else if (OipParameters.TryGetInt64(p, Seed, out var seedNumber))
        {
            seed = seedNumber >= 0 ? (ulong)seedNumber : throw new InferenceException(InferenceError.BadRequest, $"parameter '{Seed}' must be a non-negative integer");
        }

        IReadOnlyList<string> stop = [];
        if (OipParameters.TryGetString(p, Stop, out var stopJson))
        {
            stop = stopJson.StartsWith('[')
                ? JsonSerializer.Deserialize(stopJson, GenerationJson.Default.IReadOnlyListString) ?? []
                : [stopJson];
        }

        return new GenerationRequest
        {
            Prompt = Encoding.UTF8.GetString(texts[0]),
            MaxTokens = OipParameters.TryGetInt64(p, MaxTokens, out var max) ? (int)Math.Clamp(max, int.MinValue, int.MaxValue) : 16,
            Stop = stop,
            Sampling = new SamplingParameters
            {
                Temperature = OipParameters.TryGetDouble(p, Temperature, out var t) ? (float)t : 0f,
                TopK = OipParameters.TryGetInt64(p, TopK, out var k) ? (int)Math.Clamp(k, int.MinValue, int.MaxValue) : 0,
                TopP = OipParameters.TryGetDouble(p, TopP, out var topP) ? (float)topP : 1f,
                RepetitionPenalty = OipParameters.TryGetDouble(p, RepetitionPenalty, out var r) ? (float)r : 1f,
                Seed = seed,
            },
        };
    }

    /// <summary>The result of a finished generation.</summary>
    public static InferenceResponse ToResponse(string model, string version, string text, int promptTokens, int completionTokens, FinishReason reason) => new()
    {
        ModelName = model,
        ModelVersion = version,
        Parameters = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            [PromptTokens] = (long)promptTokens,
            [CompletionTokens] = (long)completionTokens,
            [FinishReasonName] = WireName(reason),
        },
        Outputs = [InferTensor.CreateBytes(TextOutput, [1], [Encoding.UTF8.GetBytes(text)])],
    };

    /// <summary>What <see cref="ToResponse"/> wrote.</summary>
    public static GenerationResult ReadResponse(InferenceResponse response)
    {
        var output = response.Outputs.FirstOrDefault(o => o.Name == TextOutput);
        var text = output?.BytesData is { Count: > 0 } data ? Encoding.UTF8.GetString(data[0]) : "";
        var p = response.Parameters;
        return new GenerationResult(
            text,
            OipParameters.TryGetInt64(p, PromptTokens, out var prompt) ? (int)prompt : 0,
            OipParameters.TryGetInt64(p, CompletionTokens, out var completion) ? (int)completion : 0,
            OipParameters.TryGetString(p, FinishReasonName, out var reason) ? reason : "stop");
    }

    /// <summary>OpenAI's and KServe's name of a finish reason: <c>stop</c> (end of sequence or a stop string),
    /// <c>length</c> (max tokens or the context), <c>cancelled</c>, <c>deadline</c>.</summary>
    public static string WireName(FinishReason reason) => reason switch
    {
        FinishReason.Eos or FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        FinishReason.Cancelled => "cancelled",
        _ => "deadline",
    };
}

/// <summary>A finished generation as the gateway reads it from the result store.</summary>
public sealed record GenerationResult(string Text, int PromptTokens, int CompletionTokens, string FinishReason);

[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyList<string>))]
internal sealed partial class GenerationJson : System.Text.Json.Serialization.JsonSerializerContext;
