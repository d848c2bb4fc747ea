using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.Onnx.Quantization;

/// <summary>How far a quantized model's outputs are from the FP32 model's on the same inputs.</summary>
/// <param name="MaxAbsError">Largest absolute difference of any logit.</param>
/// <param name="MeanAbsError">Mean absolute difference over every logit.</param>
/// <param name="Top1Agreement">Share of rows whose largest logit is at the same index in both.</param>
/// <param name="Rows">Rows compared (batch rows, or token positions of a language model).</param>
/// <param name="LogitSpread">Mean over rows of the FP32 logits' max minus min: the scale the errors are read against.</param>
public sealed record AccuracyReport(double MaxAbsError, double MeanAbsError, double Top1Agreement, int Rows, double LogitSpread)
{
    public override string ToString() =>
        FormattableString.Invariant($"max |Δlogit| {MaxAbsError:0.0000}, mean {MeanAbsError:0.00000}, top-1 agreement {Top1Agreement:P1} of {Rows} rows (FP32 logit spread {LogitSpread:0.00})");
}

/// <summary>Measures the accuracy of a quantized variant against FP32 on fixed inputs: the demo models' figures in the
/// tests and the bench come from here.</summary>
/// <remarks>Inputs come from an integer generator with a fixed seed, so the figures are the same on every run and
/// machine (up to ONNX Runtime's kernel choice for the CPU).</remarks>
public static class QuantizationAccuracy
{
    /// <summary>Compares two row-major [rows, width] logit arrays.</summary>
    public static AccuracyReport Compare(ReadOnlySpan<float> reference, ReadOnlySpan<float> candidate, int width)
    {
        if (reference.Length != candidate.Length || width < 1 || reference.Length % width != 0)
        {
            throw new ArgumentException($"{reference.Length} and {candidate.Length} values do not make rows of {width}");
        }

        var rows = reference.Length / width;
        double max = 0, sum = 0, spread = 0;
        var agree = 0;
        for (var r = 0; r < rows; r++)
        {
            var expected = reference.Slice(r * width, width);
            var actual = candidate.Slice(r * width, width);
            for (var i = 0; i < width; i++)
            {
                var error = Math.Abs((double)expected[i] - actual[i]);
                max = Math.Max(max, error);
                sum += error;
            }

            if (ArgMax(expected) == ArgMax(actual))
            {
                agree++;
            }

            spread += (double)Max(expected) - Min(expected);
        }

        return new AccuracyReport(max, sum / reference.Length, rows == 0 ? 1 : (double)agree / rows, rows, rows == 0 ? 0 : spread / rows);
    }

    /// <summary><see cref="MlpBenchModel"/>-shaped models (input <c>input</c> [N, in], output <c>output</c> [N, out]) on
    /// <paramref name="rows"/> fixed rows uniform in [-1, 1).</summary>
    public static AccuracyReport MeasureMlp(byte[] fp32, byte[] quantized, int inputWidth, int outputWidth, int rows = 256, uint seed = 7)
    {
        var input = UniformSigned(rows * inputWidth, seed);
        var reference = RunMlp(fp32, input, rows, inputWidth, outputWidth);
        var candidate = RunMlp(quantized, input, rows, inputWidth, outputWidth);
        return Compare(reference, candidate, outputWidth);
    }

    /// <summary>A <see cref="DecoderLmModel"/> language model: <paramref name="prompts"/> fixed prompts of
    /// <paramref name="length"/> token ids, prefilled with an empty past; every position's logits count as a row.</summary>
    public static AccuracyReport MeasureLm(byte[] fp32, byte[] quantized, DecoderLmConfig config, int prompts = 8, int length = 32, uint seed = 7)
    {
        ArgumentNullException.ThrowIfNull(config);
        var ids = new long[prompts * length];
        var state = seed * 2654435761u + 1;
        for (var i = 0; i < ids.Length; i++)
        {
            state = XorShift(state);
            ids[i] = state % (uint)(config.VocabularySize - 1); // any id but the end token
        }

        var reference = RunLm(fp32, ids, prompts, length, config);
        var candidate = RunLm(quantized, ids, prompts, length, config);
        return Compare(reference, candidate, config.VocabularySize);
    }

    private static float[] RunMlp(byte[] model, float[] input, int rows, int inputWidth, int outputWidth)
    {
        using var options = new SessionOptions();
        using var session = new InferenceSession(model, options);
        using var runOptions = new RunOptions();
        using var x = OrtValue.CreateTensorValueFromMemory(input, [rows, inputWidth]);
        var output = new float[rows * outputWidth];
        using var y = OrtValue.CreateTensorValueFromMemory(output, [rows, outputWidth]);
        session.Run(runOptions, [MlpBenchModel.InputName], [x], [MlpBenchModel.OutputName], [y]);
        return output;
    }

    private static float[] RunLm(byte[] model, long[] ids, int prompts, int length, DecoderLmConfig config)
    {
        using var options = new SessionOptions();
        using var session = new InferenceSession(model, options);
        using var runOptions = new RunOptions();
        var logits = new float[ids.Length * config.VocabularySize];
        for (var p = 0; p < prompts; p++)
        {
            var names = new List<string> { "input_ids", "attention_mask", "position_ids" };
            var values = new List<OrtValue>
            {
                OrtValue.CreateTensorValueFromMemory(ids[(p * length)..((p + 1) * length)], [1, length]),
                OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1L, length).ToArray(), [1, length]),
                OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, length).Select(i => (long)i).ToArray(), [1, length]),
            };
            for (var layer = 0; layer < config.Layers; layer++)
            {
                foreach (var kind in new[] { "key", "value" })
                {
                    names.Add($"past_key_values.{layer}.{kind}");
                    values.Add(OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [1, config.Heads, 0, config.HeadDim]));
                }
            }

            try
            {
                using var outputs = session.Run(runOptions, names, values, ["logits"]);
                outputs[0].GetTensorDataAsSpan<float>().CopyTo(logits.AsSpan(p * length * config.VocabularySize));
            }
            finally
            {
                foreach (var value in values)
                {
                    value.Dispose();
                }
            }
        }

        return logits;
    }

    private static float[] UniformSigned(int count, uint seed)
    {
        var values = new float[count];
        var state = seed * 2654435761u + 1;
        for (var i = 0; i < values.Length; i++)
        {
            state = XorShift(state);
            values[i] = ((state >> 8) / (float)(1 << 23)) - 1f; // [-1, 1) with 24 bits: exact in float
        }

        return values;
    }

    private static uint XorShift(uint state)
    {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        return state;
    }

    private static int ArgMax(ReadOnlySpan<float> row)
    {
        var best = 0;
        for (var i = 1; i < row.Length; i++)
        {
            if (row[i] > row[best])
            {
                best = i;
            }
        }

        return best;
    }

    private static float Max(ReadOnlySpan<float> row)
    {
        var max = row[0];
        foreach (var value in row)
        {
            max = Math.Max(max, value);
        }

        return max;
    }

    private static float Min(ReadOnlySpan<float> row)
    {
        var min = row[0];
        foreach (var value in row)
        {
            min = Math.Min(min, value);
        }

        return min;
    }
}
