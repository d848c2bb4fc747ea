using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Generation;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.IntegrationTests;

/// <summary>A demo language model run directly with ONNX Runtime in the test process (no platform, no scheduler): the
/// logits of the next token after a whole context, from one prefill with an empty past. What a worker that resumes a
/// job computes for its first token, and within float32 noise what any other path computes.</summary>
/// <remarks>Builds the model from its config (the same bytes the platform seeds) and reads the tokenizer from the
/// model's metadata, as the worker does. Not thread-safe; owns its session.</remarks>
internal sealed class DirectDecoder : IDisposable
{
    private readonly InferenceSession _session;
    private readonly DecoderLmConfig _config;
    private readonly string[] _inputNames;

    public DirectDecoder(DecoderLmConfig config)
    {
        _config = config;
        _session = new InferenceSession(DecoderLmModel.Build(config), new SessionOptions { IntraOpNumThreads = 1 });
        var metadata = _session.ModelMetadata.CustomMetadataMap;
        Tokenizer = TextTokenizer.Load(DemoTokenizer.Spec(config.VocabularySize),
            name => metadata.TryGetValue(name, out var content) ? new MemoryStream(System.Text.Encoding.UTF8.GetBytes(content), writable: false) : null);
        var inputs = new List<string> { "input_ids", "attention_mask", "position_ids" };
        for (var i = 0; i < config.Layers; i++)
        {
            inputs.Add($"past_key_values.{i}.key");
            inputs.Add($"past_key_values.{i}.value");
        }

        _inputNames = [.. inputs];
    }

    public ITextTokenizer Tokenizer { get; }

    /// <summary>The logits of the token that follows <paramref name="context"/> (prompt and generated tokens).</summary>
    public float[] NextTokenLogits(IReadOnlyList<int> context)
    {
        var length = context.Count;
        var ids = new long[length];
        var mask = new long[length];
        var positions = new long[length];
        for (var i = 0; i < length; i++)
        {
            ids[i] = context[i];
            mask[i] = 1;
            positions[i] = i;
        }

        var values = new List<OrtValue>(_inputNames.Length);
        try
        {
            values.Add(OrtValue.CreateTensorValueFromMemory(ids, [1, length]));
            values.Add(OrtValue.CreateTensorValueFromMemory(mask, [1, length]));
            values.Add(OrtValue.CreateTensorValueFromMemory(positions, [1, length]));
            for (var i = 0; i < 2 * _config.Layers; i++)
            {
                values.Add(OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [1, _config.Heads, 0, _config.HeadDim]));
            }

            using var runOptions = new RunOptions();
            using var outputs = _session.Run(runOptions, _inputNames, values, ["logits"]);
            return outputs[0].GetTensorDataAsSpan<float>().Slice((length - 1) * _config.VocabularySize, _config.VocabularySize).ToArray();
        }
        finally
        {
            foreach (var value in values)
            {
                value.Dispose();
            }
        }
    }

    /// <summary>The gap between the two largest logits.</summary>
    public static float TopTwoMargin(ReadOnlySpan<float> logits)
    {
        float first = float.NegativeInfinity, second = float.NegativeInfinity;
        foreach (var logit in logits)
        {
            if (logit > first)
            {
                (first, second) = (logit, first);
            }
            else if (logit > second)
            {
                second = logit;
            }
        }

        return first - second;
    }

    /// <summary>True when the sampler's choice between <paramref name="a"/> and <paramref name="b"/> at this position
    /// is a floating-point near-tie: moving the two logits towards each other by <paramref name="epsilon"/> in all
    /// makes it choose <paramref name="a"/> one way and <paramref name="b"/> the other. For greedy decoding that is
    /// exactly "a and b are the top two and their logits are less than epsilon apart"; for sampling it also covers the
    /// draw landing within that distance of the boundary between them.</summary>
    public static bool IsNearTie(float[] logits, SamplingParameters sampling, IReadOnlyList<int> context, ulong seed, int a, int b, float epsilon)
    {
        return Choose(a, b) == a && Choose(b, a) == b;

        int Choose(int favoured, int other)
        {
            var nudged = (float[])logits.Clone();
            nudged[favoured] += epsilon / 2;
            nudged[other] -= epsilon / 2;
            return TokenSampler.Sample(nudged, sampling, context.ToArray(), seed, context.Count);
        }
    }

    public void Dispose() => _session.Dispose();
}
