using Microsoft.Extensions.Logging;

namespace ServerlessInference.Onnx;

internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "ONNX Runtime environment: {IntraOpThreads} intra-op threads, spinning {AllowSpinning}, shared thread pool {GlobalThreadPool}, shared CPU arena {SharedArena}")]
    public static partial void EnvironmentCreated(ILogger logger, int intraOpThreads, bool allowSpinning, bool globalThreadPool, bool sharedArena);

    [LoggerMessage(2, LogLevel.Warning, "The ONNX Runtime environment existed before the engine; its thread settings stand and each session keeps its own thread pool")]
    public static partial void EnvironmentPreexisting(ILogger logger);

    [LoggerMessage(3, LogLevel.Warning, "The ONNX Runtime environment was created with {IntraOpThreads} intra-op threads and spinning {AllowSpinning}; this engine's settings ({WantedThreads}, {WantedSpinning}) do not apply")]
    public static partial void EnvironmentSettingsIgnored(ILogger logger, int intraOpThreads, bool allowSpinning, int wantedThreads, bool wantedSpinning);

    /// <summary>The one start-up line that says where models run: "Execution provider: CUDA (device 0)" or
    /// "Execution provider: CPU (CUDA unavailable: reason)".</summary>
    [LoggerMessage(4, LogLevel.Information, "Execution provider: {ExecutionProvider} ({Detail})")]
    public static partial void ExecutionProviderChosen(ILogger logger, string executionProvider, string detail);

    [LoggerMessage(6, LogLevel.Information, "Loaded model {Model} on {ExecutionProvider} in {ElapsedMs} ms ({SizeBytes} bytes)")]
    public static partial void ModelLoaded(ILogger logger, string model, string executionProvider, long elapsedMs, long sizeBytes);

    [LoggerMessage(7, LogLevel.Warning, "A stacked run of {Count} requests of model {Model} failed; running them one by one")]
    public static partial void StackedRunFailed(ILogger logger, string model, int count, Exception exception);

    [LoggerMessage(8, LogLevel.Error, "A generation step of model {Model} failed; its {Count} running sequences fail")]
    public static partial void GenerationStepFailed(ILogger logger, string model, int count, Exception exception);

    [LoggerMessage(9, LogLevel.Information, "Loaded text-generation model {Model}: {Layers} layers, {Heads} heads of {HeadDim}, vocabulary {Vocabulary}, {KvBytesPerToken} KV bytes per token")]
    public static partial void GenerationModelLoaded(ILogger logger, string model, int layers, int heads, int headDim, int vocabulary, long kvBytesPerToken);
}
