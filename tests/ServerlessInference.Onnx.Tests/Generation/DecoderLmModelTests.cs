using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.Onnx.Tests.Generation;

/// <summary>ONNX Runtime's logits of the demo language model against <see cref="ReferenceDecoder"/>.</summary>
public sealed class DecoderLmModelTests : IDisposable
{
    private const double Tolerance = 1e-4;
    private static readonly Lazy<ReferenceDecoder> s_reference = new(() => new ReferenceDecoder(LmTestModels.TinyBytes, LmTestModels.Tiny));

    private readonly DecoderSession _decoder;

    public DecoderLmModelTests()
    {
        _ = TestModels.Engine;
        _decoder = DecoderSession.Create(new InferenceSession(LmTestModels.TinyPath), DecoderLmModel.Manifest(LmTestModels.Tiny).Generation!, "tiny-lm/1");
    }

    private static DecoderLmConfig Config => LmTestModels.Tiny;

    public void Dispose() => _decoder.Dispose();

    [Fact]
    public void Build_Twice_GivesIdenticalBytes()
    {
        Assert.Equal(LmTestModels.TinyBytes, DecoderLmModel.Build(Config));
    }

    [Fact]
    public void Create_TinyLm_ReadsGeometryFromTheInputs()
    {
        Assert.Equal((2, 2, 16, 384), (_decoder.Layers, _decoder.Heads, _decoder.HeadDim, _decoder.VocabularySize));
        Assert.True(_decoder.HasPositionIds);
    }

    [Fact]
    public void Prefill_MatchesReference()
    {
        long[] ids = [5, 77, 300, 12, 9, 200, 41];
        var (logits, presents) = Run(ids, Ones(ids.Length), Range(0, ids.Length), EmptyPast(1), 1, ids.Length, 0);
        var (expected, expectedPresents) = s_reference.Value.Forward(ids, Ones(ids.Length), Range(0, ids.Length), EmptyPast(1), 1, ids.Length, 0);

        AssertClose(expected, logits);
        for (var j = 0; j < presents.Length; j++)
        {
            AssertClose(Array.ConvertAll(expectedPresents[j], f => (double)f), presents[j]);
        }
    }

    [Fact]
    public void DecodeWithPast_MatchesReferenceAndTheFullPrefill()
    {
        long[] ids = [5, 77, 300, 12, 9, 200, 41];
        var (_, past) = Run(ids[..6], Ones(6), Range(0, 6), EmptyPast(1), 1, 6, 0);
        var (logits, _) = Run(ids[6..], Ones(7), [6], past, 1, 1, 6);
        var (expected, _) = s_reference.Value.Forward(ids[6..], Ones(7), [6], past, 1, 1, 6);
        var (full, _) = s_reference.Value.Forward(ids, Ones(7), Range(0, 7), EmptyPast(1), 1, 7, 0);

        AssertClose(expected, logits);
        AssertClose(full.AsSpan(6 * Config.VocabularySize).ToArray(), logits);
    }

    [Fact]
    public void LeftPaddedBatch_PrefillAndDecode_MatchReferenceAndLoneRuns()
    {
        long[] a = [5, 77, 300, 12, 9, 200, 41, 3];
        long[] b = [250, 8, 19, 33, 101];
        const int length = 8, pad = 3;
        long[] ids = [.. a, 0, 0, 0, .. b];
        long[] mask = [.. Ones(8), 0, 0, 0, .. Ones(5)];
        long[] positions = [.. Range(0, 8), 0, 0, 0, .. Range(0, 5)];

        var (logits, past) = Run(ids, mask, positions, EmptyPast(2), 2, length, 0);
        var (expected, _) = s_reference.Value.Forward(ids, mask, positions, EmptyPast(2), 2, length, 0);
        var (loneB, _) = Run(b, Ones(5), Range(0, 5), EmptyPast(1), 1, 5, 0);
        var v = Config.VocabularySize;

        // Pad query rows attend to nothing; only real positions are compared.
        AssertClose(expected.AsSpan(0, length * v).ToArray(), logits.AsSpan(0, length * v).ToArray());
        AssertClose(expected.AsSpan((length + pad) * v).ToArray(), logits.AsSpan((length + pad) * v).ToArray());
        AssertClose(Array.ConvertAll(loneB, f => (double)f), logits.AsSpan((length + pad) * v).ToArray());

        // One decode step over the padded past.
        long[] next = [17, 23];
        long[] mask2 = [.. Ones(9), 0, 0, 0, .. Ones(6)];
        var (stepLogits, _) = Run(next, mask2, [8, 5], past, 2, 1, length);
        var (stepExpected, _) = s_reference.Value.Forward(next, mask2, [8, 5], past, 2, 1, length);
        var (loneStep, _) = s_reference.Value.Forward([.. b, 23], Ones(6), Range(0, 6), EmptyPast(1), 1, 6, 0);

        AssertClose(stepExpected, stepLogits);
        AssertClose(loneStep.AsSpan(5 * v).ToArray(), stepLogits.AsSpan(v).ToArray());
    }

    [Fact]
    public void Prefill_GreedyMargins_AreNotPathologicallySmall()
    {
        // Random prompts: the top-1/top-2 gap of the last position is mostly well above float noise.
        var random = new Random(3);
        var margins = new List<double>();
        for (var i = 0; i < 40; i++)
        {
            var ids = Enumerable.Range(0, 6).Select(_ => (long)random.Next(Config.VocabularySize - 1)).ToArray();
            var (logits, _) = Run(ids, Ones(6), Range(0, 6), EmptyPast(1), 1, 6, 0);
            var last = logits.AsSpan(5 * Config.VocabularySize).ToArray().OrderDescending().ToArray();
            margins.Add(last[0] - last[1]);
        }

        Assert.True(margins.Count(m => m > 1e-3) >= 36, $"margins: {string.Join(", ", margins.Order().Take(8))}");
    }

    private (double[] Logits, float[][] Presents) Run(long[] ids, long[] mask, long[] positions, float[][] past, int batch, int length, int pastLength)
    {
        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [batch, length]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [batch, pastLength + length]);
        using var positionsValue = OrtValue.CreateTensorValueFromMemory(positions, [batch, length]);
        var pastValues = past.Select(p => OrtValue.CreateTensorValueFromMemory(p, [batch, Config.Heads, pastLength, Config.HeadDim])).ToArray();
        try
        {
            using var outputs = _decoder.Run(idsValue, maskValue, positionsValue, pastValues);
            var logits = Array.ConvertAll(outputs[0].GetTensorDataAsSpan<float>().ToArray(), f => (double)f);
            return (logits, [.. outputs.Skip(1).Select(o => o.GetTensorDataAsSpan<float>().ToArray())]);
        }
        finally
        {
            foreach (var value in pastValues)
            {
                value.Dispose();
            }
        }
    }

    private static float[][] EmptyPast(int batch) => [.. Enumerable.Range(0, 2 * Config.Layers).Select(_ => Array.Empty<float>())];

    private static long[] Ones(int count) => Enumerable.Repeat(1L, count).ToArray();

    private static long[] Range(int start, int count) => Enumerable.Range(start, count).Select(i => (long)i).ToArray();

    private static void AssertClose(double[] expected, double[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        var worst = 0.0;
        for (var i = 0; i < expected.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]) / Math.Max(1, Math.Abs(expected[i])));
        }

        Assert.True(worst <= Tolerance, $"largest relative difference {worst}");
    }

    private static void AssertClose(double[] expected, float[] actual) => AssertClose(expected, Array.ConvertAll(actual, f => (double)f));
}
