using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Gateway;
using ServerlessInference.Generation;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Telemetry;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Gateway;

/// <summary>The gateway puts <see cref="PromptPrefix"/>'s key of the rendered prompt on every generation job, so workers
/// holding that prefix's KV can prefer it; tensor jobs and short prompts have none.</summary>
public sealed class GenerationPrefixKeyTests : IDisposable
{
    private static readonly string s_system = "system: You are a careful assistant for a queue-driven inference platform. " +
        "Answer in short sentences, cite the setting you rely on, and say when a figure comes from a short run. " +
        "Never invent a metric name; read them from /metrics. Keep answers under one hundred words.\n";

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
    private readonly TempModelStore _models = new();
    private readonly TestMeterFactory _meters = new();
    private readonly InMemoryJobQueue _queue;
    private readonly InferenceGateway _gateway;

    public GenerationPrefixKeyTests()
    {
        _models.Add("tensors");
        _models.Store.UploadAsync(new ModelManifest
        {
            Name = "lm",
            Version = "1",
            Sha256 = "",
            SizeBytes = 0,
            Inputs = [],
            Outputs = [],
            Task = ModelTasks.TextGeneration,
            Generation = new GenerationSpec
            {
                Tokenizer = new TokenizerSpec { Kind = "bpe", Vocab = "vocab.json", Merges = "merges.txt" },
                EosTokenIds = [0],
                ContextLength = 1024,
            },
        }, new MemoryStream([1, 2, 3]), CancellationToken.None).AsTask().GetAwaiter().GetResult();
        _queue = new InMemoryJobQueue(Options.Create(new JobQueueOptions()), _time);
        _gateway = new InferenceGateway(
            new ModelCatalog(_models.Store, _time),
            _queue,
            new InMemoryResultStore(Options.Create(new ResultStoreOptions()), _time),
            Options.Create(new GatewayOptions()),
            _time,
            new InferenceMetrics(_meters),
            NullLogger<InferenceGateway>.Instance);
    }

    [Fact]
    public async Task SubmitGeneration_LongPrompts_SharingTheirFirst256Bytes_GetOneKey()
    {
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(s_system) >= PromptPrefix.Bytes);

        var (first, _) = await _gateway.SubmitGenerationAsync("lm", null, new GenerationRequest { Prompt = s_system + "user: what is TTFT?\n", MaxTokens = 4 }, default);
        var (second, _) = await _gateway.SubmitGenerationAsync("lm", null, new GenerationRequest { Prompt = s_system + "user: and tokens/s?\n", MaxTokens = 4 }, default);
        var (other, _) = await _gateway.SubmitGenerationAsync("lm", null, new GenerationRequest { Prompt = "x" + s_system, MaxTokens = 4 }, default);

        Assert.NotNull(first.PrefixKey);
        Assert.Matches("^[0-9a-f]{16}$", first.PrefixKey);
        Assert.Equal(first.PrefixKey, second.PrefixKey);
        Assert.NotEqual(first.PrefixKey, other.PrefixKey);
        Assert.Equal($"lm#{first.PrefixKey}", first.AffinityKey);
        Assert.Equal(PromptPrefix.Key(s_system), first.PrefixKey);
    }

    [Fact]
    public async Task SubmitGeneration_TheKeyTravelsOnTheQueue()
    {
        var (job, _) = await _gateway.SubmitGenerationAsync("lm", null, new GenerationRequest { Prompt = s_system, MaxTokens = 4 }, default);

        var lease = Assert.Single(await _queue.ReceiveAsync(1, TimeSpan.Zero, default));

        Assert.Equal(job.PrefixKey, lease.Job.PrefixKey);
        Assert.NotNull(lease.Job.PrefixKey);
    }

    [Fact]
    public async Task Submit_ShortPromptOrTensorJob_HasNoKey()
    {
        var (shortPrompt, _) = await _gateway.SubmitGenerationAsync("lm", null, new GenerationRequest { Prompt = s_system[..200], MaxTokens = 4 }, default);
        var body = System.Text.Encoding.UTF8.GetBytes("""{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}""");
        var (tensor, _) = await _gateway.SubmitAsync("tensors", null, body, null, default);

        Assert.Null(shortPrompt.PrefixKey);
        Assert.Equal("lm", shortPrompt.AffinityKey);
        Assert.Null(tensor.PrefixKey);
    }

    [Theory]
    [InlineData(255, false)]
    [InlineData(256, true)]
    public void Key_CountsUtf8Bytes(int bytes, bool keyed)
    {
        // "é" is two UTF-8 bytes: 128 of them are 256 bytes in 128 characters.
        var prompt = bytes % 2 == 0 ? new string('é', bytes / 2) : new string('é', bytes / 2) + "a";

        Assert.Equal(keyed, PromptPrefix.Key(prompt) is not null);
        Assert.Equal(PromptPrefix.Key(prompt), PromptPrefix.Key(System.Text.Encoding.UTF8.GetBytes(prompt)));
    }

    [Fact]
    public void Key_OnlyTheFirst256BytesCount()
    {
        var head = new string('a', PromptPrefix.Bytes);

        Assert.Equal(PromptPrefix.Key(head), PromptPrefix.Key(head + "anything after"));
        Assert.NotEqual(PromptPrefix.Key(head), PromptPrefix.Key("b" + head));
    }

    public void Dispose()
    {
        _meters.Dispose();
        _models.Dispose();
    }
}
