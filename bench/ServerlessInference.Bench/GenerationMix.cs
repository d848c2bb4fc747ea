using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ServerlessInference.Generation;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.Bench;

/// <summary>One request of the generation mix: the prompt text (and its length in the model's tokens), how many tokens
/// at most, and the <c>generate_stream</c> body that asks for exactly that, greedy.</summary>
internal sealed record GenerationPrompt(int Index, string Text, int PromptTokens, int MaxTokens, byte[] Body)
{
    public GenerationRequest ToRequest() => new() { Prompt = Text, MaxTokens = MaxTokens };
}

/// <summary>The fixed, seeded request mix of the generation scenarios on <c>lm-bench</c>: prompts of 8–200 tokens
/// (pseudo-words like the demo tokenizer's corpus, counted with the model's own tokenizer) and <c>max_tokens</c> of
/// 16–128, greedy. Every driver (HTTP + queue + SSE, or the engine in process) sends the same requests in the same
/// order: client <c>c</c>'s <c>n</c>-th request is entry <c>(c · Count / clients + n) mod Count</c>.</summary>
internal sealed class GenerationMix
{
    public const int Seed = 20261210;
    public const int Count = 256;
    public const int MinPromptTokens = 8;
    public const int MaxPromptTokens = 200;
    public const int MinOutputTokens = 16;
    public const int MaxOutputTokens = 128;

    private static readonly string[] s_onsets = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "th", "sh", "ch", "st", "tr"];
    private static readonly string[] s_vowels = ["a", "e", "i", "o", "u", "ai", "ou"];
    private static readonly string[] s_punctuation = [".", ",", "!", "?", ";", ":"];

    internal GenerationMix(IReadOnlyList<GenerationPrompt> prompts) => Prompts = prompts;

    public IReadOnlyList<GenerationPrompt> Prompts { get; }

    public GenerationPrompt For(int client, int clients, int number) =>
        Prompts[(int)(((long)client * Prompts.Count / Math.Max(1, clients) + number) % Prompts.Count)];

    /// <summary>The same prompts with <c>max_tokens</c> at most <paramref name="maxTokens"/> (the lone-request TTFT).</summary>
    public GenerationMix WithMaxTokens(int maxTokens) =>
        new([.. Prompts.Select(p => p.MaxTokens <= maxTokens ? p : p with { MaxTokens = maxTokens, Body = Body(p.Text, maxTokens) })]);

    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{Prompts.Count} requests, seed {Seed}: prompts {Prompts.Min(p => p.PromptTokens)}-{Prompts.Max(p => p.PromptTokens)} tokens (mean {Prompts.Average(p => p.PromptTokens):0}), "
        + $"max_tokens {Prompts.Min(p => p.MaxTokens)}-{Prompts.Max(p => p.MaxTokens)} (mean {Prompts.Average(p => p.MaxTokens):0}), greedy");

    /// <summary>The mix, its prompts measured in <paramref name="tokenizer"/>'s tokens.</summary>
    public static GenerationMix Create(ITextTokenizer tokenizer)
    {
        var random = new Random(Seed);
        var prompts = new List<GenerationPrompt>(Count);
        for (var i = 0; i < Count; i++)
        {
            var target = random.Next(MinPromptTokens, MaxPromptTokens + 1);
            var maxTokens = random.Next(MinOutputTokens, MaxOutputTokens + 1);
            var text = new StringBuilder();
            var tokens = 0;
            while (tokens < target)
            {
                // GPT-2's pre-tokenizer splits at words (a word keeps its leading space), so a text's token count is
                // the sum of its words' counts.
                var word = new StringBuilder(text.Length == 0 ? "" : " ");
                for (var s = random.Next(1, 4); s > 0; s--)
                {
                    word.Append(s_onsets[random.Next(s_onsets.Length)]).Append(s_vowels[random.Next(s_vowels.Length)]);
                }

                if (random.Next(9) == 0)
                {
                    word.Append(s_punctuation[random.Next(s_punctuation.Length)]);
                }

                var piece = word.ToString();
                var count = tokenizer.Encode(piece).Count;
                if (tokens + count > target && tokens >= MinPromptTokens)
                {
                    break;
                }

                text.Append(piece);
                tokens += count;
            }

            var prompt = text.ToString();
            prompts.Add(new GenerationPrompt(i, prompt, tokenizer.Encode(prompt).Count, maxTokens, Body(prompt, maxTokens)));
        }

        return new GenerationMix(prompts);
    }

    /// <summary>lm-bench's tokenizer, from the same files the model carries (no model load).</summary>
    public static ITextTokenizer LmBenchTokenizer()
    {
        var config = DecoderLmModel.LmBench;
        var (vocab, merges) = DemoTokenizer.Build(config.VocabularySize, config.Seed);
        return TextTokenizer.Load(DemoTokenizer.Spec(config.VocabularySize), name => name switch
        {
            DemoTokenizer.VocabFile => new MemoryStream(Encoding.UTF8.GetBytes(vocab), writable: false),
            DemoTokenizer.MergesFile => new MemoryStream(Encoding.UTF8.GetBytes(merges), writable: false),
            _ => null,
        });
    }

    /// <summary>KServe's generate body: <c>{"text_input", "parameters": {"max_tokens", "temperature": 0}}</c>.</summary>
    internal static byte[] Body(string prompt, int maxTokens)
    {
        var buffer = new ArrayBufferWriter<byte>(prompt.Length + 96);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("text_input", prompt);
            writer.WriteStartObject("parameters");
            writer.WriteNumber("max_tokens", maxTokens);
            writer.WriteNumber("temperature", 0);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
