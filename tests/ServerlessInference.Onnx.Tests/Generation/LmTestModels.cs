using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Onnx;
using ServerlessInference.Generation;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.Onnx.Tests.Generation;

/// <summary>The tiny demo language model, built once per test run, and ways to load it.</summary>
internal static class LmTestModels
{
    /// <summary>Top-1/top-2 logit gaps below this are near-ties: batching, a resumed prefill or a wider verification pass
    /// may flip them.</summary>
    public const double NearTie = 1e-3;

    private static readonly Lazy<byte[]> s_tiny = new(() => DecoderLmModel.Build(DecoderLmModel.TinyLm));
    private static readonly Lazy<TextTokenizer> s_tinyTokenizer = new(() => TokenizerOf(s_tiny.Value, DecoderLmModel.TinyLm));
    private static readonly Lazy<string> s_tinyPath = new(() =>
    {
        var path = Path.Combine(Path.GetTempPath(), $"si-tiny-lm-{Environment.ProcessId}.onnx");
        File.WriteAllBytes(path, s_tiny.Value);
        return path;
    });

    public static DecoderLmConfig Tiny => DecoderLmModel.TinyLm;

    public static byte[] TinyBytes => s_tiny.Value;

    public static string TinyPath => s_tinyPath.Value;

    public static TextTokenizer TinyTokenizer => s_tinyTokenizer.Value;

    /// <summary>The tokenizer files a demo model carries in its metadata, read without ONNX Runtime.</summary>
    public static TextTokenizer TokenizerOf(byte[] model, DecoderLmConfig config)
    {
        var metadata = ModelProto.Parser.ParseFrom(model).MetadataProps.ToDictionary(p => p.Key, p => p.Value);
        return TextTokenizer.Load(DemoTokenizer.Spec(config.VocabularySize), name =>
            metadata.TryGetValue(name, out var text) ? new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text)) : null);
    }

    /// <summary>tiny-lm loaded by an engine with these scheduler limits; the caller disposes it.</summary>
    public static async Task<OnnxTextGenerationModel> LoadTinyAsync(int maxConcurrentSequences = 32, long kvCacheBudgetBytes = 1L << 30,
        TimeProvider? timeProvider = null, IGenerationObserver? observer = null, bool prefixCaching = true, int prefixCacheBlockTokens = 16)
    {
        _ = TestModels.Engine; // the shared ONNX Runtime environment first
        var engine = new OnnxInferenceEngine(
            Options.Create(new OnnxEngineOptions { ExecutionProvider = OnnxExecutionProvider.Cpu }),
            NullLogger<OnnxInferenceEngine>.Instance,
            Options.Create(new TextGenerationOptions
            {
                MaxConcurrentSequences = maxConcurrentSequences,
                KvCacheBudgetBytes = kvCacheBudgetBytes,
                PrefixCaching = prefixCaching,
                PrefixCacheBlockTokens = prefixCacheBlockTokens,
            }),
            timeProvider,
            observer);
        var model = await engine.LoadAsync(DecoderLmModel.Manifest(Tiny), TinyPath, CancellationToken.None);
        return Assert.IsType<OnnxTextGenerationModel>(model);
    }

    /// <summary>Every event of a generation.</summary>
    public static async Task<List<GeneratedToken>> CollectAsync(ITextGenerationModel model, GenerationRequest request,
        IReadOnlyList<int>? resume = null, CancellationToken cancellationToken = default)
    {
        var events = new List<GeneratedToken>();
        await foreach (var token in model.GenerateAsync(request, resume, cancellationToken))
        {
            events.Add(token);
        }

        return events;
    }

    /// <summary>Token ids of the events that made a token.</summary>
    public static int[] Tokens(IEnumerable<GeneratedToken> events) => [.. events.Where(e => e.TokenId >= 0).Select(e => e.TokenId)];
}
