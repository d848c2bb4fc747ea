using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx;

/// <summary>Loads ONNX models into ONNX Runtime sessions.</summary>
/// <remarks>
/// The first engine of a process creates the global ONNX Runtime environment: one shared intra-op thread pool
/// (<see cref="OnnxEngineOptions.IntraOpThreads"/>, one inter-op thread) that every session uses instead of its own,
/// and one shared CPU arena. The execution provider is probed once per process: CUDA when its libraries load and a
/// tiny model runs on it, else the CPU. Thread-safe; holds nothing that needs disposing (sessions belong to the
/// <see cref="OnnxLoadedModel"/>s).
/// </remarks>
public sealed class OnnxInferenceEngine : IInferenceEngine
{
    /// <summary>The value of <see cref="ExecutionProvider"/> when CUDA runs the models.</summary>
    public const string Cuda = "CUDA";

    /// <summary>The value of <see cref="ExecutionProvider"/> when the CPU runs the models.</summary>
    public const string Cpu = "CPU";

    private readonly OnnxEngineOptions _options;
    private readonly ILogger<OnnxInferenceEngine> _logger;
    private readonly EnvironmentState _environment;

    /// <exception cref="InvalidOperationException"><see cref="OnnxEngineOptions.ExecutionProvider"/> is
    /// <see cref="OnnxExecutionProvider.Cuda"/> and CUDA cannot run here.</exception>
    public OnnxInferenceEngine(IOptions<OnnxEngineOptions> options, ILogger<OnnxInferenceEngine> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        _options = options.Value;
        _logger = logger;

        _environment = OnnxRuntimeEnvironment.GetOrCreate(_options);
        if (_environment.Preexisting)
        {
            Log.EnvironmentPreexisting(logger);
        }
        else if (_environment.IntraOpThreads != _options.IntraOpThreads || _environment.AllowSpinning != _options.AllowSpinning)
        {
            Log.EnvironmentSettingsIgnored(logger, _environment.IntraOpThreads, _environment.AllowSpinning, _options.IntraOpThreads, _options.AllowSpinning);
        }
        else
        {
            Log.EnvironmentCreated(logger, _environment.IntraOpThreads, _environment.AllowSpinning, _environment.GlobalThreadPool, _environment.SharedArena);
        }

        (ExecutionProvider, ExecutionProviderDetail) = ChooseExecutionProvider();
        Log.ExecutionProviderChosen(logger, ExecutionProvider, ExecutionProviderDetail);
    }

    /// <summary><see cref="Cuda"/> or <see cref="Cpu"/>, decided when the engine was created.</summary>
    public string ExecutionProvider { get; }

    /// <summary>Why <see cref="ExecutionProvider"/> is what it is, for logs and health checks: <c>device 0</c> on CUDA,
    /// <c>CUDA unavailable: reason</c> when <see cref="OnnxExecutionProvider.Auto"/> fell back to the CPU, or
    /// <c>Inference:Onnx:ExecutionProvider is Cpu</c>.</summary>
    public string ExecutionProviderDetail { get; }

    /// <summary>Creates a session from <paramref name="weightsPath"/> on a pool thread and checks the model's inputs
    /// and outputs (names, element types, ranks, fixed dims) against <paramref name="manifest"/>.</summary>
    /// <exception cref="InferenceException"><see cref="InferenceError.ModelFailure"/>: the file is missing, ONNX
    /// Runtime cannot load it, or it does not match the manifest.</exception>
    public async ValueTask<ILoadedModel> LoadAsync(ModelManifest manifest, string weightsPath, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentException.ThrowIfNullOrEmpty(weightsPath);
        cancellationToken.ThrowIfCancellationRequested();
        return await Task.Run(() => Load(manifest, weightsPath), cancellationToken).ConfigureAwait(false);
    }

    private OnnxLoadedModel Load(ModelManifest manifest, string weightsPath)
    {
        var file = new FileInfo(weightsPath);
        if (!file.Exists)
        {
            throw new InferenceException(InferenceError.ModelFailure, $"the weights of model '{manifest.Key}' are missing");
        }

        var stopwatch = Stopwatch.StartNew();
        InferenceSession session;
        try
        {
            using var sessionOptions = OnnxRuntimeEnvironment.CreateSessionOptions(_environment, _options);
            if (ExecutionProvider == Cuda)
            {
                OnnxRuntimeEnvironment.AppendCuda(sessionOptions, _options.CudaDeviceId);
            }

            session = new InferenceSession(file.FullName, sessionOptions);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new InferenceException(InferenceError.ModelFailure, $"ONNX Runtime cannot load model '{manifest.Key}': {ex.Message}", ex);
        }

        try
        {
            var signature = ModelSignature.Create(manifest, session);
            Log.ModelLoaded(_logger, manifest.Key, ExecutionProvider, stopwatch.ElapsedMilliseconds, file.Length);
            return new OnnxLoadedModel(manifest, session, signature, file.Length, ExecutionProvider, _logger);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private (string Provider, string Detail) ChooseExecutionProvider()
    {
        if (_options.ExecutionProvider == OnnxExecutionProvider.Cpu)
        {
            return (Cpu, $"{OnnxEngineOptions.Section}:ExecutionProvider is Cpu");
        }

        var probe = OnnxRuntimeEnvironment.ProbeCuda(_environment, _options.CudaDeviceId);
        if (probe.Available)
        {
            return (Cuda, $"device {_options.CudaDeviceId}");
        }

        if (_options.ExecutionProvider == OnnxExecutionProvider.Cuda)
        {
            throw new InvalidOperationException(
                $"Inference:Onnx:ExecutionProvider is Cuda, but CUDA device {_options.CudaDeviceId} cannot run models here: {probe.Error}");
        }

        // One line in the log, however many lines the native loader's message has.
        return (Cpu, $"CUDA unavailable: {probe.Error?.ReplaceLineEndings(" ")}");
    }
}
