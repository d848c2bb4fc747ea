using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;
using static ServerlessInference.Onnx.Tests.TestModels;

namespace ServerlessInference.Onnx.Tests;

public sealed class OptimizedModelCacheTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "si-optimized-tests", Guid.NewGuid().ToString("N"));

    public OptimizedModelCacheTests()
    {
        _ = TestModels.Engine; // the shared ONNX Runtime environment first, as every test here does
        Directory.CreateDirectory(_root);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static OnnxInferenceEngine NewEngine(bool cache = true) => new(
        Options.Create(new OnnxEngineOptions { ExecutionProvider = OnnxExecutionProvider.Cpu, CacheOptimizedModels = cache }),
        NullLogger<OnnxInferenceEngine>.Instance);

    /// <summary>Puts <paramref name="bytes"/> where the weights cache would ({sha256}.onnx) and returns the path and sha256.</summary>
    private (string Path, string Sha256) Cached(byte[] bytes)
    {
        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        var path = Path.Combine(_root, sha + ".onnx");
        File.WriteAllBytes(path, bytes);
        return (path, sha);
    }

    private static string[] CachedGraphs(string weightsPath) =>
        Directory.Exists(Path.Combine(Path.GetDirectoryName(weightsPath)!, "optimized"))
            ? Directory.GetFiles(Path.Combine(Path.GetDirectoryName(weightsPath)!, "optimized"))
            : [];

    private static async Task<float[]> RunAsync(ILoadedModel model, InferenceRequest request)
    {
        var results = await model.RunBatchAsync([request], CancellationToken.None);
        Assert.True(results[0].Response is not null, results[0].Error);
        return results[0].Response!.Outputs[0].AsSpan<float>().ToArray();
    }

    public static TheoryData<string> DemoModels => ["mlp-bench", "resnet18"];

    private (string Path, ModelManifest Manifest, InferenceRequest Request) Demo(string name)
    {
        if (name == "mlp-bench")
        {
            var (path, sha) = Cached(MlpBenchModel.Build());
            return (path, MlpBenchModel.Manifest(sha256: sha, sizeBytes: new FileInfo(path).Length), Request("a", Floats("input", 2, 512, 0.1f)));
        }

        var (resnet, resnetSha) = Cached(File.ReadAllBytes(ResNet18Model.FindFile()));
        var pixels = new float[3 * 224 * 224];
        for (var i = 0; i < pixels.Length; i++)
        {
            pixels[i] = (float)Math.Sin(i * 0.001) * 100f;
        }

        return (resnet, ResNet18Model.Manifest(sha256: resnetSha, sizeBytes: new FileInfo(resnet).Length),
            Request("img", InferTensor.Create(ResNet18Model.InputName, [1, 3, 224, 224], pixels)));
    }

    [Theory]
    [MemberData(nameof(DemoModels))]
    public async Task LoadAsync_SecondLoad_UsesTheCachedOptimizedGraphWithIdenticalOutputs(string name)
    {
        var (path, manifest, request) = Demo(name);

        using var uncached = (OnnxLoadedModel)await NewEngine(cache: false).LoadAsync(manifest, path, CancellationToken.None);
        Assert.Equal(OptimizedModelUse.NotCached, uncached.OptimizedModel);
        Assert.Empty(CachedGraphs(path));

        using var first = (OnnxLoadedModel)await NewEngine().LoadAsync(manifest, path, CancellationToken.None);
        Assert.Equal(OptimizedModelUse.Saved, first.OptimizedModel);
        var graph = Assert.Single(CachedGraphs(path));
        Assert.StartsWith(manifest.Sha256, Path.GetFileName(graph), StringComparison.Ordinal);

        using var second = (OnnxLoadedModel)await NewEngine().LoadAsync(manifest, path, CancellationToken.None);
        Assert.Equal(OptimizedModelUse.Loaded, second.OptimizedModel);

        var expected = await RunAsync(uncached, request);
        Assert.Equal(expected, await RunAsync(first, request));
        Assert.Equal(expected, await RunAsync(second, request));
    }

    [Fact]
    public async Task LoadAsync_CorruptCachedGraph_LoadsTheOriginalAndRewritesIt()
    {
        var (path, manifest, request) = Demo("mlp-bench");
        using (var first = (OnnxLoadedModel)await NewEngine().LoadAsync(manifest, path, CancellationToken.None))
        {
            Assert.Equal(OptimizedModelUse.Saved, first.OptimizedModel);
        }

        var graph = Assert.Single(CachedGraphs(path));
        var good = await File.ReadAllBytesAsync(graph);
        await File.WriteAllBytesAsync(graph, good.AsSpan(0, good.Length / 2).ToArray());

        using var repaired = (OnnxLoadedModel)await NewEngine().LoadAsync(manifest, path, CancellationToken.None);
        using var again = (OnnxLoadedModel)await NewEngine().LoadAsync(manifest, path, CancellationToken.None);
        using var uncached = await NewEngine(cache: false).LoadAsync(manifest, path, CancellationToken.None);

        Assert.Equal(OptimizedModelUse.Saved, repaired.OptimizedModel);
        Assert.Equal(good.Length, new FileInfo(Assert.Single(CachedGraphs(path))).Length);
        Assert.Equal(OptimizedModelUse.Loaded, again.OptimizedModel);
        Assert.Equal(await RunAsync(uncached, request), await RunAsync(again, request));
    }

    [Theory]
    [InlineData("runtime")]
    [InlineData("hardware")]
    public async Task LoadAsync_GraphCachedForAnotherRuntimeVersionOrCpu_MissesAndOptimizesAgain(string changed)
    {
        var (path, manifest, _) = Demo("mlp-bench");
        using (await NewEngine().LoadAsync(manifest, path, CancellationToken.None))
        {
        }

        var options = new OnnxEngineOptions();
        var file = new FileInfo(path);
        var current = OptimizedModelCache.PathFor(options, manifest, file, OnnxInferenceEngine.Cpu)!;
        var other = changed == "runtime"
            ? OptimizedModelCache.PathFor(options, manifest, file, OnnxInferenceEngine.Cpu, runtimeVersion: "1.0.0")!
            : OptimizedModelCache.PathFor(options, manifest, file, OnnxInferenceEngine.Cpu, hardware: "x64-avx2")!;
        Assert.NotEqual(current, other);
        File.Move(current, other);

        using var model = (OnnxLoadedModel)await NewEngine().LoadAsync(manifest, path, CancellationToken.None);

        Assert.Equal(OptimizedModelUse.Saved, model.OptimizedModel);
        Assert.True(File.Exists(current));
        Assert.True(File.Exists(other));
    }

    [Fact]
    public void PathFor_CudaProvider_IsNotCached()
    {
        var (path, manifest, _) = Demo("mlp-bench");

        // A CPU graph is never handed to a CUDA session, and CUDA's own saved graphs do not load again (Memcpy nodes).
        Assert.NotNull(OptimizedModelCache.PathFor(new OnnxEngineOptions(), manifest, new FileInfo(path), OnnxInferenceEngine.Cpu));
        Assert.Null(OptimizedModelCache.PathFor(new OnnxEngineOptions(), manifest, new FileInfo(path), OnnxInferenceEngine.Cuda));
    }

    [Fact]
    public async Task LoadAsync_ManifestWithoutSha256_IsNotCached()
    {
        var (path, manifest, _) = Demo("mlp-bench");

        using var model = (OnnxLoadedModel)await NewEngine().LoadAsync(manifest with { Sha256 = "" }, path, CancellationToken.None);

        Assert.Equal(OptimizedModelUse.NotCached, model.OptimizedModel);
        Assert.Empty(CachedGraphs(path));
    }

    [Fact]
    public async Task LoadAsync_OptimizedModelDirectorySet_SavesThere()
    {
        var (path, manifest, _) = Demo("mlp-bench");
        var directory = Path.Combine(_root, "elsewhere");
        var engine = new OnnxInferenceEngine(
            Options.Create(new OnnxEngineOptions { ExecutionProvider = OnnxExecutionProvider.Cpu, OptimizedModelDirectory = directory }),
            NullLogger<OnnxInferenceEngine>.Instance);

        using var model = (OnnxLoadedModel)await engine.LoadAsync(manifest, path, CancellationToken.None);

        Assert.Equal(OptimizedModelUse.Saved, model.OptimizedModel);
        Assert.Single(Directory.GetFiles(directory));
        Assert.Empty(CachedGraphs(path));
    }
}
