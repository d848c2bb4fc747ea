using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Onnx;
using ServerlessInference.Models;
using static ServerlessInference.Onnx.OnnxModelProtos;
using DataType = Onnx.TensorProto.Types.DataType;

namespace ServerlessInference.Onnx.Tests;

/// <summary>Small models built in the test, one shared engine, and request builders.</summary>
internal static class TestModels
{
    private static readonly Lazy<OnnxInferenceEngine> s_engine = new(() =>
        new OnnxInferenceEngine(Options.Create(new OnnxEngineOptions()), NullLogger<OnnxInferenceEngine>.Instance));

    /// <summary>The engine every test shares (the ONNX Runtime environment is per process anyway). Created before
    /// any direct <c>InferenceSession</c>, so the shared thread pool is in place.</summary>
    public static OnnxInferenceEngine Engine => s_engine.Value;

    public static async Task<ILoadedModel> LoadAsync(byte[] model, ModelManifest manifest)
    {
        var path = Path.Combine(Path.GetTempPath(), $"si-onnx-tests-{Guid.NewGuid():N}.onnx");
        await File.WriteAllBytesAsync(path, model);
        try
        {
            return await Engine.LoadAsync(manifest, path, CancellationToken.None);
        }
        finally
        {
            File.Delete(path);
        }
    }

    public static ModelManifest Manifest(string name, TensorSpec[] inputs, TensorSpec[] outputs, bool dynamicBatch = true, int maxBatchSize = 8) => new()
    {
        Name = name,
        Sha256 = "",
        SizeBytes = 0,
        Inputs = inputs,
        Outputs = outputs,
        DynamicBatch = dynamicBatch,
        MaxBatchSize = maxBatchSize,
    };

    /// <summary>x [N,4] FP32 → relu = Relu(x), neg = Neg(x).</summary>
    public static (byte[] Model, ModelManifest Manifest) TwoOutputs()
    {
        var graph = new GraphProto { Name = "two-outputs" };
        graph.Input.Add(ValueInfo("x", DataType.Float, null, 4));
        graph.Output.Add(ValueInfo("relu", DataType.Float, null, 4));
        graph.Output.Add(ValueInfo("neg", DataType.Float, null, 4));
        graph.Node.Add(Node("Relu", ["x"], ["relu"]));
        graph.Node.Add(Node("Neg", ["x"], ["neg"]));
        return (Model(graph), Manifest("two-outputs",
            [new("x", TensorDatatype.Fp32, [-1, 4])],
            [new("relu", TensorDatatype.Fp32, [-1, 4]), new("neg", TensorDatatype.Fp32, [-1, 4])]));
    }

    /// <summary>Identity over [N, M] with M variable: output sizes are unknown before the run.</summary>
    public static (byte[] Model, ModelManifest Manifest) Identity(TensorDatatype datatype, bool variableWidth)
    {
        var elementType = (DataType)(int)TensorTypes.ToElementType(datatype);
        long width = variableWidth ? -1 : 3;
        var graph = new GraphProto { Name = "identity" };
        graph.Input.Add(ValueInfo("x", elementType, null, width));
        graph.Output.Add(ValueInfo("y", elementType, null, width));
        graph.Node.Add(Node("Identity", ["x"], ["y"]));
        return (Model(graph), Manifest("identity",
            [new("x", datatype, [-1, width])],
            [new("y", datatype, [-1, width])]));
    }

    /// <summary>Gather from a 4-element FP32 table with INT64 indices [N,1]: an index out of range passes every
    /// shape check and fails only inside ONNX Runtime.</summary>
    public static (byte[] Model, ModelManifest Manifest) Gather()
    {
        var graph = new GraphProto { Name = "gather" };
        graph.Input.Add(ValueInfo("idx", DataType.Int64, null, 1));
        graph.Output.Add(ValueInfo("y", DataType.Float, null, 1));
        graph.Initializer.Add(FloatTensor("table", [10f, 20f, 30f, 40f], 4));
        graph.Node.Add(Node("Gather", ["table", "idx"], ["y"]));
        return (Model(graph), Manifest("gather",
            [new("idx", TensorDatatype.Int64, [-1, 1])],
            [new("y", TensorDatatype.Fp32, [-1, 1])]));
    }

    /// <summary>x [N,1] FP32 → y [N,1] where every element is N, the rows of the ONNX Runtime call: a request's answer
    /// says how many rows ran with it, so a test sees whether requests were stacked into one call.</summary>
    public static (byte[] Model, ModelManifest Manifest) RowsPerCall(int maxBatchSize = 8)
    {
        var graph = new GraphProto { Name = "rows" };
        graph.Input.Add(ValueInfo("x", DataType.Float, null, 1));
        graph.Output.Add(ValueInfo("y", DataType.Float, null, 1));
        graph.Initializer.Add(FloatTensor("zero", [0f]));
        graph.Initializer.Add(FloatTensor("one", [1f]));
        graph.Node.Add(Node("Mul", ["x", "zero"], ["zeros"]));
        graph.Node.Add(Node("Add", ["zeros", "one"], ["ones"]));
        // No axes: the sum over every axis of [N,1] ones is N, kept as [1,1] and broadcast back over the rows.
        graph.Node.Add(Node("ReduceSum", ["ones"], ["rows"]));
        graph.Node.Add(Node("Add", ["zeros", "rows"], ["y"]));
        return (Model(graph), Manifest("rows",
            [new("x", TensorDatatype.Fp32, [-1, 1])],
            [new("y", TensorDatatype.Fp32, [-1, 1])], maxBatchSize: maxBatchSize));
    }

    /// <summary>y = x + x over fixed [1,4] FP32: a fixed-batch model.</summary>
    public static (byte[] Model, ModelManifest Manifest) FixedDouble()
    {
        var graph = new GraphProto { Name = "fixed" };
        graph.Input.Add(ValueInfo("x", DataType.Float, 1, 4));
        graph.Output.Add(ValueInfo("y", DataType.Float, 1, 4));
        graph.Node.Add(Node("Add", ["x", "x"], ["y"]));
        return (Model(graph), Manifest("fixed",
            [new("x", TensorDatatype.Fp32, [1, 4])],
            [new("y", TensorDatatype.Fp32, [1, 4])], dynamicBatch: false, maxBatchSize: 1));
    }

    public static InferenceRequest Request(string id, params InferTensor[] inputs) => new() { Id = id, Inputs = inputs };

    public static InferTensor Floats(string name, int rows, int width, float start)
    {
        var values = new float[rows * width];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = start + (0.37f * i) - (0.11f * i * i % 3);
        }

        return InferTensor.Create(name, [rows, width], values);
    }

    public static float[] FloatsOf(BatchItemResult result, string output = "y")
    {
        Assert.Null(result.Error);
        return result.Response!.Outputs.Single(o => o.Name == output).AsSpan<float>().ToArray();
    }

    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double relative = 1e-5)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            var tolerance = relative * Math.Max(1.0, Math.Abs(expected[i]));
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"element {i}: expected {expected[i]}, got {actual[i]}");
        }
    }
}
