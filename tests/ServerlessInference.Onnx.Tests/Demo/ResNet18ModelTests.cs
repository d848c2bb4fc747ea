using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;
using static ServerlessInference.Onnx.Tests.TestModels;

namespace ServerlessInference.Onnx.Tests.Demo;

public sealed class ResNet18ModelTests
{
    [Fact]
    public void FindFile_AfterBuild_FindsTheCopyBesideTheApp()
    {
        var path = ResNet18Model.FindFile();

        Assert.Equal(Path.Combine(AppContext.BaseDirectory, ResNet18Model.RelativePath), path);
        Assert.Equal(63_653_533, new FileInfo(path).Length);
    }

    [Fact]
    public async Task RunBatchAsync_DeterministicInput_MatchesDirectSessionRun()
    {
        var path = ResNet18Model.FindFile();
        using var model = await Engine.LoadAsync(ResNet18Model.Manifest(), path, CancellationToken.None);
        var pixels = new float[3 * 224 * 224];
        for (var i = 0; i < pixels.Length; i++)
        {
            pixels[i] = (float)Math.Sin(i * 0.001) * 100f;
        }

        var results = await model.RunBatchAsync(
            [Request("img", InferTensor.Create(ResNet18Model.InputName, [1, 3, 224, 224], pixels))], CancellationToken.None);

        var output = Assert.Single(results[0].Response!.Outputs);
        Assert.Equal(ResNet18Model.OutputName, output.Name);
        Assert.Equal([1L, 512L, 1L, 1L], output.Shape);
        Assert.Equal(new FileInfo(path).Length, model.SizeBytes);

        using var session = new InferenceSession(path);
        using var input = OrtValue.CreateTensorValueFromMemory(pixels, [1, 3, 224, 224]);
        using var runOptions = new RunOptions();
        using var direct = session.Run(runOptions, [ResNet18Model.InputName], [input], [ResNet18Model.OutputName]);
        AssertClose(direct[0].GetTensorDataAsSpan<float>(), output.AsSpan<float>(), relative: 1e-4);
    }

    [Fact]
    public void Manifest_AgreesWithTheOnnxFile()
    {
        _ = Engine; // the shared ONNX Runtime environment first, as every test here
        var manifest = ResNet18Model.Manifest();
        using var session = new InferenceSession(ResNet18Model.FindFile());

        ManifestAssert.MatchesSession(manifest, session);
    }
}
