using Microsoft.ML.OnnxRuntime;
using Onnx;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Tests.Generation;
using ServerlessInference.Onnx.Quantization;
using Xunit.Abstractions;

namespace ServerlessInference.Onnx.Tests.Quantization;

/// <summary>The INT8 rewrite itself: which nodes change, the per-channel arithmetic, and that both forms still run.</summary>
public sealed class Int8WeightQuantizerTests(ITestOutputHelper output)
{
    static Int8WeightQuantizerTests() => _ = TestModels.Engine; // the shared ONNX Runtime environment first

    private static readonly int[] SmallMlp = [64, 96, 96, 8];

    [Fact]
    public void QuantizeColumns_EachColumn_UsesItsOwnSymmetricScale()
    {
        // 2 rows x 3 columns; column 1 is ten times column 0, column 2 is zero.
        float[] weights = [1.0f, -10f, 0f, -0.5f, 5f, 0f];

        var (codes, scales) = Int8WeightQuantizer.QuantizeColumns(weights, 2, 3);

        Assert.Equal([1f / 127, 10f / 127, 1f], scales);
        Assert.Equal(new sbyte[] { 127, -127, 0, -64, 64, 0 }, codes); // -0.5 * 127 = -63.5 rounds to even: -64
    }

    [Theory]
    [InlineData(Int8Form.Dynamic, "MatMulInteger")]
    [InlineData(Int8Form.WeightOnly, "DequantizeLinear")]
    public void Quantize_Mlp_ReplacesEveryMatMulWeightWithInt8(Int8Form form, string quantizedOp)
    {
        var fp32 = MlpBenchModel.Build(SmallMlp, seed: 3);

        var (bytes, report) = Int8WeightQuantizer.Quantize(fp32, form);

        var graph = ModelProto.Parser.ParseFrom(bytes).Graph;
        Assert.Equal(3, report.QuantizedWeights);
        Assert.Empty(report.SkippedNodes);
        Assert.Equal(3, graph.Node.Count(n => n.OpType == quantizedOp));
        Assert.DoesNotContain(graph.Initializer, t => t.Name is "w0" or "w1" or "w2");
        Assert.Equal(3, graph.Initializer.Count(t => t.DataType is (int)TensorProto.Types.DataType.Int8 or (int)TensorProto.Types.DataType.Uint8 && t.Dims.Count == 2));
        Assert.Equal(((64 * 96) + (96 * 96) + (96 * 8)) * 4L, report.FloatWeightBytes);
        Assert.True(bytes.Length < fp32.Length / 3, $"{bytes.Length} bytes from {fp32.Length}");
    }

    [Theory]
    [InlineData(Int8Form.Dynamic)]
    [InlineData(Int8Form.WeightOnly)]
    public void Quantize_Mlp_RunsCloseToFp32(Int8Form form)
    {
        var fp32 = MlpBenchModel.Build(SmallMlp, seed: 3);
        var (int8, _) = Int8WeightQuantizer.Quantize(fp32, form);

        var accuracy = QuantizationAccuracy.MeasureMlp(fp32, int8, SmallMlp[0], SmallMlp[^1]);

        output.WriteLine($"{form}: {accuracy}");
        Assert.True(accuracy.MeanAbsError > 0, "a quantized model that matches exactly was not quantized");
        Assert.True(accuracy.MaxAbsError < 0.05 * accuracy.LogitSpread, accuracy.ToString());
    }

    [Fact]
    public void Quantize_TinyLm_KeepsTheTokenizerAndLeavesActivationMatMulsAlone()
    {
        var fp32 = LmTestModels.TinyBytes;

        var (int8, report) = Int8WeightQuantizer.Quantize(fp32);

        var model = ModelProto.Parser.ParseFrom(int8);
        var layers = DecoderLmModel.TinyLm.Layers;
        Assert.Equal((layers * 6) + 1, report.QuantizedWeights); // wq wk wv wo w1 w2 per layer, and lm_head
        Assert.Equal(2 * layers, model.Graph.Node.Count(n => n.OpType == "MatMul")); // q·kᵀ and probs·v stay FP32
        Assert.Equal(ModelProto.Parser.ParseFrom(fp32).MetadataProps, model.MetadataProps);
        Assert.Contains(model.Graph.Initializer, t => t.Name == "wte"); // read by Gather, not a MatMul weight
    }

    [Fact]
    public void Quantize_Gemm_TransposedWeightAndBias_MatchesFp32()
    {
        var fp32 = GemmModel();

        var (int8, report) = Int8WeightQuantizer.Quantize(fp32);

        Assert.Equal(1, report.QuantizedWeights);
        Assert.DoesNotContain(ModelProto.Parser.ParseFrom(int8).Graph.Node, n => n.OpType == "Gemm");
        var accuracy = QuantizationAccuracy.MeasureMlp(fp32, int8, 16, 4);
        output.WriteLine(accuracy.ToString());
        // Measured: max 0.101, mean 0.0217 against a spread of 10.0; top-1 99.6 % (one near-tie row of 256 flips).
        Assert.True(accuracy.Top1Agreement >= 0.98, accuracy.ToString());
        Assert.True(accuracy.MaxAbsError < 0.02 * accuracy.LogitSpread, accuracy.ToString());
    }

    [Fact]
    public void Quantize_GemmWithAlpha_IsSkippedWithTheReason()
    {
        var fp32 = GemmModel(alpha: 0.5f);

        var ex = Assert.Throws<InvalidDataException>(() => Int8WeightQuantizer.Quantize(fp32));

        Assert.Contains("nothing to quantize", ex.Message);
        Assert.Contains("alpha", ex.Message);
    }

    [Fact]
    public void Quantize_NotAModel_ThrowsInvalidData()
    {
        var ex = Assert.Throws<InvalidDataException>(() => Int8WeightQuantizer.Quantize([0xff, 0xff, 0xff, 0x01]));

        Assert.Contains("not an ONNX model", ex.Message);
    }

    [Fact]
    public void Quantize_SameModelTwice_GivesIdenticalBytes()
    {
        var fp32 = MlpBenchModel.Build(SmallMlp, seed: 3);

        Assert.Equal(Int8WeightQuantizer.Quantize(fp32).Model, Int8WeightQuantizer.Quantize(fp32).Model);
    }

    /// <summary>Y = X·Wᵀ + C as one Gemm (transB = 1, as exported from a linear layer): X [N, 16], W [4, 16], C [4].</summary>
    private static byte[] GemmModel(float alpha = 1f)
    {
        var weights = new float[4 * 16];
        for (var i = 0; i < weights.Length; i++)
        {
            weights[i] = MathF.Sin(i * 0.7f) * (1 + (i % 4));
        }

        var graph = new GraphProto { Name = "gemm" };
        graph.Input.Add(OnnxModelProtos.ValueInfo(MlpBenchModel.InputName, TensorProto.Types.DataType.Float, null, 16));
        graph.Output.Add(OnnxModelProtos.ValueInfo(MlpBenchModel.OutputName, TensorProto.Types.DataType.Float, null, 4));
        graph.Initializer.Add(OnnxModelProtos.FloatTensor("w", weights, 4, 16));
        graph.Initializer.Add(OnnxModelProtos.FloatTensor("c", [0.1f, -0.2f, 0.3f, 0f], 4));
        var gemm = OnnxModelProtos.Node("Gemm", [MlpBenchModel.InputName, "w", "c"], [MlpBenchModel.OutputName]);
        gemm.Attribute.Add(new AttributeProto { Name = "transB", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        gemm.Attribute.Add(new AttributeProto { Name = "alpha", Type = AttributeProto.Types.AttributeType.Float, F = alpha });
        graph.Node.Add(gemm);
        return OnnxModelProtos.Model(graph);
    }
}
