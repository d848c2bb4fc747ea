using System.Runtime.InteropServices;
using Onnx;
using ServerlessInference.Onnx.Demo;
using static ServerlessInference.Onnx.Tests.TestModels;

namespace ServerlessInference.Onnx.Tests.Demo;

public sealed class MlpBenchModelTests
{
    private static readonly int[] s_small = [8, 16, 12, 5];

    [Fact]
    public async Task Build_SmallVariant_OutputEqualsDoublePrecisionComputation()
    {
        var bytes = MlpBenchModel.Build(s_small, seed: 7);
        using var model = await LoadAsync(bytes, MlpBenchModel.Manifest(layerSizes: s_small));
        var input = Floats(MlpBenchModel.InputName, rows: 3, width: 8, start: -1.5f);

        var results = await model.RunBatchAsync([Request("a", input)], CancellationToken.None);

        var expected = Forward(ModelProto.Parser.ParseFrom(bytes), input.AsSpan<float>().ToArray(), rows: 3);
        var actual = FloatsOf(results[0], MlpBenchModel.OutputName);
        Assert.Equal([3L, 5L], results[0].Response!.Outputs[0].Shape);
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4 * Math.Max(1.0, Math.Abs(expected[i])),
                $"element {i}: expected {expected[i]}, got {actual[i]}");
        }
    }

    [Fact]
    public void Build_SameSeed_SameBytes()
    {
        Assert.Equal(MlpBenchModel.Build(s_small, 7), MlpBenchModel.Build(s_small, 7));
        Assert.NotEqual(MlpBenchModel.Build(s_small, 7), MlpBenchModel.Build(s_small, 8));
    }

    [Fact]
    public async Task Build_Default_LoadsAndAnswersSixteenFinitePerRow()
    {
        using var model = await LoadAsync(MlpBenchModel.Build(), MlpBenchModel.Manifest());
        var results = await model.RunBatchAsync([Request("a", Floats("input", 2, 512, 0.1f))], CancellationToken.None);

        var output = Assert.Single(results[0].Response!.Outputs);
        Assert.Equal([2L, 16L], output.Shape);
        Assert.All(output.AsSpan<float>().ToArray(), v => Assert.True(float.IsFinite(v) && Math.Abs(v) < 1e4));
    }

    [Fact]
    public void Manifest_AgreesWithTheBuiltModel()
    {
        _ = Engine; // the shared ONNX Runtime environment first, as every test here
        using var defaultSession = new Microsoft.ML.OnnxRuntime.InferenceSession(MlpBenchModel.Build());
        using var smallSession = new Microsoft.ML.OnnxRuntime.InferenceSession(MlpBenchModel.Build(s_small, 7));

        ManifestAssert.MatchesSession(MlpBenchModel.Manifest(), defaultSession);
        ManifestAssert.MatchesSession(MlpBenchModel.Manifest(layerSizes: s_small), smallSession);
    }

    /// <summary>The MLP in double precision, reading the weights from the model's initializers.</summary>
    private static double[] Forward(ModelProto model, float[] input, int rows)
    {
        var initializers = model.Graph.Initializer.ToDictionary(t => t.Name);
        var h = Array.ConvertAll(input, v => (double)v);
        var width = input.Length / rows;
        for (var layer = 0; initializers.ContainsKey($"w{layer}"); layer++)
        {
            var w = initializers[$"w{layer}"];
            var b = MemoryMarshal.Cast<byte, float>(initializers[$"b{layer}"].RawData.Span).ToArray();
            var weights = MemoryMarshal.Cast<byte, float>(w.RawData.Span).ToArray();
            int fanIn = (int)w.Dims[0], fanOut = (int)w.Dims[1];
            Assert.Equal(width, fanIn);
            var next = new double[rows * fanOut];
            var last = !initializers.ContainsKey($"w{layer + 1}");
            for (var r = 0; r < rows; r++)
            {
                for (var o = 0; o < fanOut; o++)
                {
                    double sum = b[o];
                    for (var i = 0; i < fanIn; i++)
                    {
                        sum += h[(r * fanIn) + i] * weights[(i * fanOut) + o];
                    }

                    next[(r * fanOut) + o] = last ? sum : Math.Max(0, sum);
                }
            }

            h = next;
            width = fanOut;
        }

        return h;
    }
}
