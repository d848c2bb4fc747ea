using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.Onnx.Tests;

public sealed class ManifestInferenceTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "si-manifest-inference-" + Guid.NewGuid().ToString("N"));

    public ManifestInferenceTests()
    {
        Directory.CreateDirectory(_dir);
        _ = TestModels.Engine; // the shared ONNX Runtime environment first
    }

    [Fact]
    public void Infer_DynamicBatchModel_ReadsNamesTypesShapesFromTheGraph()
    {
        var (model, expected) = TestModels.TwoOutputs();

        var manifest = ManifestInference.Infer(Write(model), "two", "3", maxBatchSize: 16);

        Assert.Equal("two/3", manifest.Key);
        Assert.True(manifest.DynamicBatch);
        Assert.Equal(16, manifest.MaxBatchSize);
        Assert.Equal(Describe(expected.Inputs), Describe(manifest.Inputs));
        Assert.Equal(Describe(expected.Outputs), Describe(manifest.Outputs));
    }

    [Fact]
    public async Task Infer_Mlp_ManifestLoadsInTheEngine()
    {
        var path = Write(MlpBenchModel.Build([4, 8, 3], seed: 1));

        var manifest = ManifestInference.Infer(path, "mlp", "1");

        Assert.Equal(["input FP32 [-1,4]"], Describe(manifest.Inputs));
        Assert.Equal(["output FP32 [-1,3]"], Describe(manifest.Outputs));
        Assert.Equal(ManifestInference.DefaultMaxBatchSize, manifest.MaxBatchSize);
        using var loaded = await TestModels.Engine.LoadAsync(manifest, path, CancellationToken.None);
        Assert.Equal("mlp/1", loaded.Manifest.Key);
    }

    [Fact]
    public void Infer_FixedBatchModel_IsNotDynamicAndTakesOneRow()
    {
        var path = ResNet18Model.FindFile();

        var manifest = ManifestInference.Infer(path, "resnet", "1", maxBatchSize: 8);

        Assert.False(manifest.DynamicBatch);
        Assert.Equal(1, manifest.MaxBatchSize);
        Assert.Equal(Describe(ResNet18Model.Manifest().Inputs), Describe(manifest.Inputs));
        Assert.Equal(Describe(ResNet18Model.Manifest().Outputs), Describe(manifest.Outputs));
    }

    [Fact]
    public void Infer_DecoderWithKvCache_RefusedNamingTheReadme()
    {
        var path = Write(DecoderLmModel.Build(DecoderLmModel.TinyLm));

        var ex = Assert.Throws<InferenceException>(() => ManifestInference.Infer(path, "lm", "1"));

        Assert.Equal(InferenceError.BadRequest, ex.Error);
        Assert.Contains("text-generation", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Infer_NotAnOnnxFile_BadRequestNamingTheFile()
    {
        var path = Path.Combine(_dir, "notes.onnx");
        File.WriteAllText(path, "this is not a protobuf");

        var ex = Assert.Throws<InferenceException>(() => ManifestInference.Infer(path, "x", "1"));

        Assert.Equal(InferenceError.BadRequest, ex.Error);
        Assert.Contains("'notes.onnx' is not an ONNX model", ex.Message, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(byte[] model)
    {
        var path = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".onnx");
        File.WriteAllBytes(path, model);
        return path;
    }

    private static string[] Describe(IEnumerable<TensorSpec> specs) =>
        [.. specs.Select(s => $"{s.Name} {s.Datatype.Name()} [{string.Join(",", s.Shape)}]")];
}
