using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Generation;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Generation;
using ServerlessInference.Onnx.Generation.Speculative;

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
    private readonly TextGenerationOptions _generationOptions;
    private readonly TimeProvider _timeProvider;
    private readonly IGenerationObserver? _generationObserver;
    private readonly IDraftModelSource? _draftModels;

    /// <param name="options">Engine settings.</param>
    /// <param name="logger">The engine's logger.</param>
    /// <param name="generationOptions">Scheduler limits of <c>text-generation</c> models (defaults when null).</param>
    /// <param name="timeProvider">The clock of generation deadlines and latencies (the system clock when null).</param>
    /// <param name="generationObserver">Latency hooks of <c>text-generation</c> models (none when null).</param>
    /// <param name="draftModels">Where draft models named by <c>generation.speculative.draft</c> come from (a manifest
    /// naming one fails to load when null).</param>
    /// <exception cref="InvalidOperationException"><see cref="OnnxEngineOptions.ExecutionProvider"/> is
    /// <see cref="OnnxExecutionProvider.Cuda"/> and CUDA cannot run here.</exception>
    public OnnxInferenceEngine(IOptions<OnnxEngineOptions> options, ILogger<OnnxInferenceEngine> logger,
        IOptions<TextGenerationOptions>? generationOptions = null, TimeProvider? timeProvider = null, IGenerationObserver? generationObserver = null,
        IDraftModelSource? draftModels = null)
    {
        _draftModels = draftModels;
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        _options = options.Value;
        _logger = logger;
        _generationOptions = generationOptions?.Value ?? new TextGenerationOptions();
        _timeProvider = timeProvider ?? TimeProvider.System;
        _generationObserver = generationObserver;

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
    /// and outputs (names, element types, ranks, fixed dims) against <paramref name="manifest"/>. A
    /// <c>text-generation</c> manifest gives an <see cref="OnnxTextGenerationModel"/> (an <see cref="ITextGenerationModel"/>)
    /// whose KV-cache geometry is read from the model and checked against the manifest's generation spec.</summary>
    /// <exception cref="InferenceException"><see cref="InferenceError.ModelFailure"/>: the file is missing, ONNX
    /// Runtime cannot load it, or it does not match the manifest.</exception>
    public async ValueTask<ILoadedModel> LoadAsync(ModelManifest manifest, string weightsPath, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentException.ThrowIfNullOrEmpty(weightsPath);
        cancellationToken.ThrowIfCancellationRequested();
        (ModelManifest Manifest, string WeightsPath)? draft = null;
        if (manifest.IsTextGeneration && manifest.Generation?.Speculative?.Draft is { } draftName)
        {
            draft = await FindDraftAsync(manifest, draftName, cancellationToken).ConfigureAwait(false);
        }

        return await Task.Run(() => Load(manifest, weightsPath, draft), cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<(ModelManifest Manifest, string WeightsPath)> FindDraftAsync(ModelManifest manifest, string name, CancellationToken cancellationToken)
    {
        if (_draftModels is null)
        {
            throw new InferenceException(InferenceError.ModelFailure, $"model '{manifest.Key}': generation.speculative.draft names '{name}', but this engine has no model store to load drafts from");
        }

        return await _draftModels.FindAsync(name, cancellationToken).ConfigureAwait(false)
            ?? throw new InferenceException(InferenceError.ModelFailure, $"model '{manifest.Key}': generation.speculative.draft names '{name}', which is not in the model store");
    }

    private ILoadedModel Load(ModelManifest manifest, string weightsPath, (ModelManifest Manifest, string WeightsPath)? draft)
    {
        if (manifest.Task is not null && !manifest.IsTextGeneration)
        {
            throw new InferenceException(InferenceError.ModelFailure, $"model '{manifest.Key}' has task '{manifest.Task}'; only '{ModelTasks.TextGeneration}' is known");
        }

        if (manifest.IsTextGeneration)
        {
            var problems = manifest.Generation?.Validate() ?? ["generation is missing: a text-generation model needs it"];
            if (problems.Count > 0)
            {
                throw new InferenceException(InferenceError.ModelFailure, $"model '{manifest.Key}' has an invalid manifest: {string.Join("; ", problems)}");
            }
        }

        var file = new FileInfo(weightsPath);
        if (!file.Exists)
        {
            throw new InferenceException(InferenceError.ModelFailure, $"the weights of model '{manifest.Key}' are missing");
        }

        var stopwatch = Stopwatch.StartNew();
        InferenceSession session;
        OptimizedModelUse optimized;
        try
        {
            var cachePath = OptimizedModelCache.PathFor(_options, manifest, file, ExecutionProvider);
            session = OptimizedModelCache.CreateSession(file.FullName, cachePath, CreateSessionOptions, _logger, manifest.Key, out optimized);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new InferenceException(InferenceError.ModelFailure, $"ONNX Runtime cannot load model '{manifest.Key}': {ex.Message}", ex);
        }

        if (manifest.IsTextGeneration)
        {
            return LoadTextGeneration(manifest, session, file, draft);
        }

        try
        {
            var signature = ModelSignature.Create(manifest, session);
            Log.ModelLoaded(_logger, manifest.Key, ExecutionProvider, stopwatch.ElapsedMilliseconds, file.Length);
            return new OnnxLoadedModel(manifest, session, signature, file.Length, ExecutionProvider, optimized, _logger);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private SessionOptions CreateSessionOptions()
    {
        var sessionOptions = OnnxRuntimeEnvironment.CreateSessionOptions(_environment, _options);
        try
        {
            if (ExecutionProvider == Cuda)
            {
                OnnxRuntimeEnvironment.AppendCuda(sessionOptions, _options.CudaDeviceId);
            }

            return sessionOptions;
        }
        catch
        {
            sessionOptions.Dispose();
            throw;
        }
    }

    private OnnxTextGenerationModel LoadTextGeneration(ModelManifest manifest, InferenceSession session, FileInfo file, (ModelManifest Manifest, string WeightsPath)? draft)
    {
        DecoderSession? decoder = null;
        DraftModelProposer? draftProposer = null;
        try
        {
            var stopwatch = Stopwatch.StartNew();
            var spec = manifest.Generation!;
            decoder = DecoderSession.Create(session, spec, manifest.Key);
            TextTokenizer tokenizer;
            try
            {
                tokenizer = TextTokenizer.Load(spec.Tokenizer, OnnxTextGenerationModel.TokenizerFiles(file.FullName, session));
            }
            catch (InvalidDataException e)
            {
                throw new InferenceException(InferenceError.ModelFailure, $"model '{manifest.Key}': {e.Message}", e);
            }

            if (tokenizer.VocabularySize > decoder.VocabularySize)
            {
                throw new InferenceException(InferenceError.ModelFailure,
                    $"model '{manifest.Key}': generation.tokenizer has {tokenizer.VocabularySize} ids but the model's logits have {decoder.VocabularySize}");
            }

            long draftBytes = 0;
            var options = _generationOptions;
            if (draft is { } found)
            {
                draftProposer = LoadDraft(manifest, decoder, found.Manifest, found.WeightsPath);
                draftBytes = new FileInfo(found.WeightsPath).Length;
                options = ReserveDraftKv(manifest, found.Manifest, draftProposer.Draft, options);
            }

            var scheduler = new GenerationScheduler(decoder, tokenizer, spec, options, _timeProvider, _generationObserver, manifest.Key, _logger);
            SpeculativeDecoding.Configure(scheduler, spec, draftProposer);
            Log.GenerationModelLoaded(_logger, manifest.Key, decoder.Layers, decoder.Heads, decoder.HeadDim, decoder.VocabularySize, decoder.KvBytesPerToken);
            Log.ModelLoaded(_logger, manifest.Key, ExecutionProvider, stopwatch.ElapsedMilliseconds, file.Length);
            return new OnnxTextGenerationModel(manifest, scheduler, tokenizer, file.Length + draftBytes, ExecutionProvider);
        }
        catch
        {
            if (decoder is null)
            {
                session.Dispose();
            }
            else
            {
                decoder.Dispose();
            }

            draftProposer?.Dispose();
            throw;
        }
    }

    /// <summary>The options of a target whose draft keeps one sequence's KV cache (up to the target's context): that much
    /// comes off the KV budget its sequences and prefix cache share, so the draft's cache is inside the budget too.</summary>
    private static TextGenerationOptions ReserveDraftKv(ModelManifest target, ModelManifest draft, DecoderSession draftDecoder, TextGenerationOptions options)
    {
        var context = target.Generation!.ContextLength;
        var draftKv = draftDecoder.KvBytesPerToken * context;
        if (draftKv >= options.KvCacheBudgetBytes)
        {
            throw new InferenceException(InferenceError.ModelFailure,
                $"model '{target.Key}': generation.speculative.draft '{draft.Name}' needs {draftKv} bytes of KV cache for one sequence of {context} tokens, " +
                $"which leaves nothing of {TextGenerationOptions.Section}:KvCacheBudgetBytes ({options.KvCacheBudgetBytes}) for the target's sequences");
        }

        return options.WithKvCacheBudget(options.KvCacheBudgetBytes - draftKv);
    }

    /// <summary>The draft's session, checked against its target: a text-generation model with the same vocabulary and at
    /// least the target's context.</summary>
    private DraftModelProposer LoadDraft(ModelManifest target, DecoderSession targetDecoder, ModelManifest draft, string weightsPath)
    {
        var field = $"model '{target.Key}': generation.speculative.draft '{draft.Name}'";
        if (!draft.IsTextGeneration || draft.Generation is not { } draftSpec)
        {
            throw new InferenceException(InferenceError.ModelFailure, $"{field} is not a text-generation model");
        }

        if (draftSpec.ContextLength < target.Generation!.ContextLength)
        {
            throw new InferenceException(InferenceError.ModelFailure,
                $"{field} has a context of {draftSpec.ContextLength} tokens, shorter than the target's {target.Generation.ContextLength}");
        }

        InferenceSession session;
        try
        {
            var file = new FileInfo(weightsPath);
            session = OptimizedModelCache.CreateSession(file.FullName, OptimizedModelCache.PathFor(_options, draft, file, ExecutionProvider), CreateSessionOptions, _logger, draft.Key, out _);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new InferenceException(InferenceError.ModelFailure, $"{field}: ONNX Runtime cannot load it: {ex.Message}", ex);
        }

        DecoderSession decoder;
        try
        {
            decoder = DecoderSession.Create(session, draftSpec, draft.Key);
        }
        catch
        {
            session.Dispose();
            throw;
        }

        if (decoder.VocabularySize != targetDecoder.VocabularySize)
        {
            decoder.Dispose();
            throw new InferenceException(InferenceError.ModelFailure,
                $"{field} has a vocabulary of {decoder.VocabularySize}, not the target's {targetDecoder.VocabularySize}");
        }

        return new DraftModelProposer(decoder);
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
