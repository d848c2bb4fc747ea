using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Generation;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;
using Xunit.Abstractions;
using static ServerlessInference.Onnx.Tests.Generation.LmTestModels;

namespace ServerlessInference.Onnx.Tests.Generation;

/// <summary>The speculative-decoding demo (lm-spec and its first-block draft lm-spec-draft) does what the bench and the
/// README claim of it: the draft agrees often but not always, and the model copies a span it has seen. Greedy with fixed
/// weights, so the counts are deterministic.</summary>
public sealed class SpeculativeDemoTests(SpeculativeDemoTests.Files files, ITestOutputHelper output) : IClassFixture<SpeculativeDemoTests.Files>
{
    private const string Question = "user: thou shai bazou tichou stai chou, tha wou ke?\nassistant:";

    [Fact]
    public async Task GenerateAsync_LmSpecWithItsDraft_AcceptsMostProposalsNotAll()
    {
        using var plain = await LoadAsync(null);
        using var speculative = await LoadAsync(new SpeculativeSpec { Draft = DecoderLmModel.LmSpecDraft.Name, K = 4 });
        var request = new GenerationRequest { Prompt = Question, MaxTokens = 96 };

        var expected = Tokens(await CollectAsync(plain, request));
        var actual = Tokens(await CollectAsync(speculative, request));

        var counters = speculative.Counters;
        var acceptance = (double)counters.SpeculativeAcceptedTokens / counters.SpeculativeProposedTokens;
        output.WriteLine($"accepted {counters.SpeculativeAcceptedTokens} of {counters.SpeculativeProposedTokens} ({acceptance:0.00}); steps {counters.Steps} vs {plain.Counters.Steps}");
        Assert.Equal(expected, actual);
        // 71 of 86 (0.83) when written: the README and bench/README.md claim at least 0.7.
        Assert.True(acceptance >= 0.7, $"the first-block draft agrees often: {acceptance:0.00}");
        // The later blocks are refinements, not no-ops: they overturn the draft's choice sometimes.
        Assert.True(counters.SpeculativeAcceptedTokens < counters.SpeculativeProposedTokens, "and not always");
        Assert.True(counters.Steps < plain.Counters.Steps / 2, $"fewer target passes: {counters.Steps} vs {plain.Counters.Steps}");
    }

    [Fact]
    public async Task GenerateAsync_LmSpecOnARepeatedQuestion_RepeatsItsAnswerAndPromptLookupAccepts()
    {
        using var plain = await LoadAsync(null);
        using var lookup = await LoadAsync(new SpeculativeSpec { PromptLookup = true, K = 4 });
        var question = plain.Tokenizer.Encode(Question);
        var first = Tokens(await CollectAsync(plain, new GenerationRequest { PromptTokenIds = question, MaxTokens = 96 }));
        var copyHeavy = new GenerationRequest { PromptTokenIds = [.. question, .. first, .. question], MaxTokens = 96 };

        var second = Tokens(await CollectAsync(plain, copyHeavy));
        var withLookup = Tokens(await CollectAsync(lookup, copyHeavy));

        var counters = lookup.Counters;
        var acceptance = (double)counters.SpeculativeAcceptedTokens / counters.SpeculativeProposedTokens;
        var same = first.Zip(second).TakeWhile(p => p.First == p.Second).Count();
        output.WriteLine($"first answer {string.Join(' ', first)}");
        output.WriteLine($"second       {string.Join(' ', second)}");
        output.WriteLine($"same prefix {same} of {first.Length}; lookup accepted {counters.SpeculativeAcceptedTokens} of {counters.SpeculativeProposedTokens} ({acceptance:0.00}); steps {counters.Steps} vs {plain.Counters.Steps}");
        Assert.Equal(second, withLookup);
        // Local attention: what lies further back than the question does not change the answer, so it is a copy.
        Assert.Equal(first, second);
        Assert.True(acceptance >= 0.9, $"prompt lookup proposes the copy: {acceptance:0.00}");
    }

    private async Task<OnnxTextGenerationModel> LoadAsync(SpeculativeSpec? speculative)
    {
        _ = TestModels.Engine;
        var engine = new OnnxInferenceEngine(
            Options.Create(new OnnxEngineOptions { ExecutionProvider = OnnxExecutionProvider.Cpu }),
            NullLogger<OnnxInferenceEngine>.Instance,
            Options.Create(new TextGenerationOptions { MaxConcurrentSequences = 1 }),
            draftModels: files);
        var manifest = DecoderLmModel.Manifest(DecoderLmModel.LmSpec);
        manifest = manifest with { Generation = manifest.Generation! with { Speculative = speculative } };
        return Assert.IsType<OnnxTextGenerationModel>(await engine.LoadAsync(manifest, files.TargetPath, CancellationToken.None));
    }

    /// <summary>lm-spec (111 MB) and its draft, written once for the class and deleted after it.</summary>
    public sealed class Files : IDraftModelSource, IDisposable
    {
        public string TargetPath { get; } = Write(DecoderLmModel.LmSpec);

        public string DraftPath { get; } = Write(DecoderLmModel.LmSpecDraft);

        public ValueTask<(ModelManifest Manifest, string WeightsPath)?> FindAsync(string name, CancellationToken cancellationToken) =>
            ValueTask.FromResult<(ModelManifest, string)?>(name == DecoderLmModel.LmSpecDraft.Name
                ? (DecoderLmModel.Manifest(DecoderLmModel.LmSpecDraft), DraftPath)
                : null);

        public void Dispose()
        {
            File.Delete(TargetPath);
            File.Delete(DraftPath);
        }

        private static string Write(DecoderLmConfig config)
        {
            var path = Path.Combine(Path.GetTempPath(), $"si-{config.Name}-{Environment.ProcessId}.onnx");
            File.WriteAllBytes(path, DecoderLmModel.Build(config));
            return path;
        }
    }
}
