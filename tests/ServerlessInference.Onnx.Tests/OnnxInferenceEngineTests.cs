using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;
using static ServerlessInference.Onnx.Tests.TestModels;

namespace ServerlessInference.Onnx.Tests;

public sealed class OnnxInferenceEngineTests
{
    private static readonly int[] s_mlp = [4, 6, 2];

    [Fact]
    public void ExecutionProvider_CpuRequested_ReportsCpu()
    {
        var engine = Create(OnnxExecutionProvider.Cpu);

        Assert.Equal("CPU", engine.ExecutionProvider);
    }

    [Fact]
    public void ExecutionProvider_Auto_ReportsCpuUnlessCudaRuns()
    {
        var auto = Create(OnnxExecutionProvider.Auto);

        if (auto.ExecutionProvider == "CPU")
        {
            // No CUDA here (the usual CI machine): forcing it must fail loudly, not fall back.
            var error = Assert.Throws<InvalidOperationException>(() => Create(OnnxExecutionProvider.Cuda));
            Assert.Contains("ExecutionProvider is Cuda", error.Message);
        }
        else
        {
            Assert.Equal("CUDA", auto.ExecutionProvider);
            Assert.Equal("CUDA", Create(OnnxExecutionProvider.Cuda).ExecutionProvider);
        }
    }

    [Fact]
    public void Constructor_CpuRequested_LogsOneExecutionProviderLine()
    {
        var log = new RecordingLogger();

        var engine = new OnnxInferenceEngine(Options.Create(new OnnxEngineOptions { ExecutionProvider = OnnxExecutionProvider.Cpu }), log);

        Assert.Equal("Inference:Onnx:ExecutionProvider is Cpu", engine.ExecutionProviderDetail);
        Assert.Equal("Execution provider: CPU (Inference:Onnx:ExecutionProvider is Cpu)", Assert.Single(log.Lines, l => l.StartsWith("Execution provider", StringComparison.Ordinal)));
    }

    [Fact]
    public void Constructor_Auto_LogsTheProviderAndWhyOnOneLine()
    {
        var log = new RecordingLogger();

        var engine = new OnnxInferenceEngine(Options.Create(new OnnxEngineOptions { ExecutionProvider = OnnxExecutionProvider.Auto }), log);

        var line = Assert.Single(log.Lines, l => l.StartsWith("Execution provider", StringComparison.Ordinal));
        Assert.DoesNotContain('\n', line);
        if (engine.ExecutionProvider == "CUDA")
        {
            Assert.Equal("Execution provider: CUDA (device 0)", line);
        }
        else
        {
            // No CUDA here (the usual CI machine): the line says why, e.g. a CUDA library that does not load.
            Assert.StartsWith("Execution provider: CPU (CUDA unavailable: ", line);
            Assert.True(line.Length > "Execution provider: CPU (CUDA unavailable: )".Length, line);
        }
    }

    [Fact]
    public async Task LoadAsync_ManifestInputNameDiffers_ThrowsModelFailure()
    {
        var manifest = MlpBenchModel.Manifest(layerSizes: s_mlp) with
        {
            Inputs = [new TensorSpec("pixels", TensorDatatype.Fp32, [-1, 4])],
        };

        var error = await Assert.ThrowsAsync<InferenceException>(() => LoadAsync(MlpBenchModel.Build(s_mlp, 1), manifest));

        Assert.Equal(InferenceError.ModelFailure, error.Error);
        Assert.Contains("model input 'input' is missing from the manifest", error.Message);
        Assert.Contains("manifest input 'pixels' is not an input of the model", error.Message);
    }

    [Fact]
    public async Task LoadAsync_ManifestDatatypeDiffers_ThrowsModelFailure()
    {
        var manifest = MlpBenchModel.Manifest(layerSizes: s_mlp) with
        {
            Outputs = [new TensorSpec("output", TensorDatatype.Fp64, [-1, 2])],
        };

        var error = await Assert.ThrowsAsync<InferenceException>(() => LoadAsync(MlpBenchModel.Build(s_mlp, 1), manifest));

        Assert.Equal("model 'mlp-bench/1' does not match its manifest: output 'output' is FP32 in the model but FP64 in the manifest", error.Message);
    }

    [Fact]
    public async Task LoadAsync_ManifestShapeDiffers_ThrowsModelFailure()
    {
        var manifest = MlpBenchModel.Manifest(layerSizes: s_mlp) with
        {
            Inputs = [new TensorSpec("input", TensorDatatype.Fp32, [-1, 5])],
        };

        var error = await Assert.ThrowsAsync<InferenceException>(() => LoadAsync(MlpBenchModel.Build(s_mlp, 1), manifest));

        Assert.Contains("input 'input' has shape [-1,4] in the model but [-1,5] in the manifest", error.Message);
    }

    [Fact]
    public async Task LoadAsync_DynamicManifestForFixedBatchModel_ThrowsModelFailure()
    {
        var (bytes, manifest) = FixedDouble();

        var error = await Assert.ThrowsAsync<InferenceException>(() =>
            LoadAsync(bytes, manifest with { DynamicBatch = true, Inputs = [new TensorSpec("x", TensorDatatype.Fp32, [-1, 4])] }));

        Assert.Contains("a dynamic-batch model needs a variable dim 0", error.Message);
    }

    [Fact]
    public async Task LoadAsync_NotAnOnnxFile_ThrowsModelFailure()
    {
        var error = await Assert.ThrowsAsync<InferenceException>(() => LoadAsync("not a model"u8.ToArray(), MlpBenchModel.Manifest()));

        Assert.Equal(InferenceError.ModelFailure, error.Error);
        Assert.StartsWith("ONNX Runtime cannot load model 'mlp-bench/1'", error.Message);
    }

    [Fact]
    public async Task LoadAsync_MissingFile_ThrowsModelFailure()
    {
        var error = await Assert.ThrowsAsync<InferenceException>(async () =>
            await Engine.LoadAsync(MlpBenchModel.Manifest(), "/nonexistent/model.onnx", CancellationToken.None));

        Assert.Equal(InferenceError.ModelFailure, error.Error);
    }

    [Fact]
    public async Task LoadAsync_Model_ReportsFileSizeAndProvider()
    {
        var bytes = MlpBenchModel.Build(s_mlp, 1);

        using var model = (OnnxLoadedModel)await LoadAsync(bytes, MlpBenchModel.Manifest(layerSizes: s_mlp));

        Assert.Equal(bytes.Length, model.SizeBytes);
        Assert.Equal(Engine.ExecutionProvider, model.ExecutionProvider);
    }

    private static OnnxInferenceEngine Create(OnnxExecutionProvider provider) =>
        new(Options.Create(new OnnxEngineOptions { ExecutionProvider = provider }), NullLogger<OnnxInferenceEngine>.Instance);

    private sealed class RecordingLogger : ILogger<OnnxInferenceEngine>
    {
        private readonly Lock _lock = new();
        private readonly List<string> _lines = [];

        public IReadOnlyList<string> Lines
        {
            get
            {
                lock (_lock)
                {
                    return [.. _lines];
                }
            }
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_lock)
            {
                _lines.Add(formatter(state, exception));
            }
        }
    }
}
