using System.Runtime.CompilerServices;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Generation;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx.Generation;

/// <summary>A <c>text-generation</c> model on ONNX Runtime: a <see cref="DecoderSession"/>, its tokenizer and the
/// continuous-batching <see cref="GenerationScheduler"/> every generation of the model shares.</summary>
/// <remarks>Thread-safe. <see cref="Dispose"/> stops the scheduler (running generations fail with
/// <see cref="ObjectDisposedException"/>) and releases the session and the KV cache.</remarks>
public sealed class OnnxTextGenerationModel : ITextGenerationModel, IPrefixCacheView
{
    private readonly GenerationScheduler _scheduler;

    internal OnnxTextGenerationModel(ModelManifest manifest, GenerationScheduler scheduler, ITextTokenizer tokenizer, long sizeBytes, string executionProvider)
    {
        Manifest = manifest;
        Generation = manifest.Generation!;
        _scheduler = scheduler;
        Tokenizer = tokenizer;
        SizeBytes = sizeBytes;
        ExecutionProvider = executionProvider;
    }

    public ModelManifest Manifest { get; }

    public GenerationSpec Generation { get; }

    public ITextTokenizer Tokenizer { get; }

    public GenerationCounters Counters => _scheduler.Counters;

    /// <summary>The <see cref="PromptPrefix"/> keys of prompts whose first block the prefix cache holds now.</summary>
    public IReadOnlyCollection<string> HeldPrefixKeys => _scheduler.HeldPrefixKeys;

    internal GenerationScheduler Scheduler => _scheduler;

    /// <summary>The weights file's size; the KV cache is bounded separately by <see cref="TextGenerationOptions.KvCacheBudgetBytes"/>.</summary>
    public long SizeBytes { get; }

    public string ExecutionProvider { get; }

    /// <summary>Layers, heads, head size and vocabulary read from the model's inputs and outputs.</summary>
    public (int Layers, int Heads, int HeadDim, int VocabularySize) Geometry =>
        (_scheduler.Decoder.Layers, _scheduler.Decoder.Heads, _scheduler.Decoder.HeadDim, _scheduler.Decoder.VocabularySize);

    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(GenerationRequest request, IReadOnlyList<int>? resumeTokens,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var sequence = _scheduler.Submit(request, resumeTokens ?? [], cancellationToken);
        try
        {
            // Not cancelled by the token: a cancelled sequence still gets its last event from the scheduler.
            while (await sequence.Output.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
            {
                while (sequence.Output.TryRead(out var token))
                {
                    yield return token;
                }
            }
        }
        finally
        {
            sequence.Abandon();
        }
    }

    public ValueTask<IReadOnlyList<BatchItemResult>> RunBatchAsync(IReadOnlyList<InferenceRequest> requests, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(requests);
        var failure = BatchItemResult.Failure($"model '{Manifest.Key}' is a text-generation model; it takes generation requests, not tensors", InferenceError.BadRequest);
        return ValueTask.FromResult<IReadOnlyList<BatchItemResult>>([.. requests.Select(_ => failure)]);
    }

    public void Dispose()
    {
        _scheduler.Dispose();
        _scheduler.Proposer?.Dispose();
        _scheduler.Decoder.Dispose();
    }

    /// <summary>Opens a tokenizer file: beside the weights, else the model's metadata property of that name.</summary>
    internal static Func<string, Stream?> TokenizerFiles(string weightsPath, InferenceSession session)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(weightsPath))!;
        return name =>
        {
            var beside = Path.Combine(directory, name);
            if (File.Exists(beside))
            {
                return new FileStream(beside, FileMode.Open, FileAccess.Read, FileShare.Read);
            }

            return session.ModelMetadata.CustomMetadataMap.TryGetValue(name, out var content)
                ? new MemoryStream(System.Text.Encoding.UTF8.GetBytes(content), writable: false)
                : null;
        };
    }
}
