using System.Text;
using ServerlessInference.Generation;
using ServerlessInference.Models;

namespace ServerlessInference.Tests.Generation;

public sealed class GenerationManifestJsonTests
{
    private const string Sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    private static string Json(string generation) => $$"""
        {
          "name": "tiny-lm", "sha256": "{{Sha}}", "size_bytes": 10,
          "task": "text-generation",
          "generation": {{generation}}
        }
        """;

    private const string ValidGeneration = """
        {
          "tokenizer": { "kind": "bpe", "vocab": "vocab.json", "merges": "merges.txt", "special_tokens": { "<|endoftext|>": 383 } },
          "eos_token_ids": [383],
          "context_length": 256,
          "num_layers": 2,
          "chat_template": { "message": "{role}: {content}\n", "generation_prompt": "assistant:" }
        }
        """;

    [Fact]
    public void Deserialize_TextGeneration_ReadsTheSpecWithoutTensors()
    {
        var manifest = ModelManifestJson.Deserialize(Encoding.UTF8.GetBytes(Json(ValidGeneration)));

        Assert.True(manifest.IsTextGeneration);
        Assert.Empty(manifest.Inputs);
        var generation = manifest.Generation!;
        Assert.Equal(("bpe", "vocab.json", "merges.txt"), (generation.Tokenizer.Kind, generation.Tokenizer.Vocab, generation.Tokenizer.Merges));
        Assert.Equal(383, generation.Tokenizer.SpecialTokens!["<|endoftext|>"]);
        Assert.Equal([383], generation.EosTokenIds);
        Assert.Equal((256, 2, (int?)null), (generation.ContextLength, generation.NumLayers, generation.NumHeads));
        Assert.Equal("assistant:", generation.ChatTemplate!.GenerationPrompt);
    }

    [Fact]
    public void SerializeThenDeserialize_TextGeneration_RoundTrips()
    {
        var manifest = ModelManifestJson.Deserialize(Encoding.UTF8.GetBytes(Json(ValidGeneration)));

        var again = ModelManifestJson.Deserialize(ModelManifestJson.Serialize(manifest));

        Assert.Equal(ModelManifestJson.Serialize(manifest), ModelManifestJson.Serialize(again));
        Assert.Contains("\"eos_token_ids\"", Encoding.UTF8.GetString(ModelManifestJson.Serialize(manifest)));
    }

    [Theory]
    [InlineData("""{"tokenizer": {"kind": "bpe", "vocab": "v.json", "merges": "m.txt"}, "eos_token_ids": [], "context_length": 8}""", "generation.eos_token_ids must not be empty")]
    [InlineData("""{"tokenizer": {"kind": "bpe", "vocab": "v.json", "merges": "m.txt"}, "context_length": 8}""", "generation.eos_token_ids is missing")]
    [InlineData("""{"tokenizer": {"kind": "bpe", "vocab": "v.json"}, "eos_token_ids": [1], "context_length": 8}""", "generation.tokenizer.merges is required")]
    [InlineData("""{"tokenizer": {"kind": "sentencepiece"}, "eos_token_ids": [1], "context_length": 8}""", "generation.tokenizer.kind must be")]
    [InlineData("""{"tokenizer": {"kind": "tiktoken", "file": "../x"}, "eos_token_ids": [1], "context_length": 8}""", "plain file names")]
    [InlineData("""{"tokenizer": {"kind": "tiktoken", "file": "x"}, "eos_token_ids": [1], "context_length": 1}""", "generation.context_length must be at least 2")]
    [InlineData("""{"tokenizer": {"kind": "tiktoken", "file": "x"}, "eos_token_ids": [1], "context_length": 8, "num_heads": 0}""", "generation.num_heads must be at least 1")]
    [InlineData("""{"tokenizer": {"kind": "tiktoken", "file": "x"}, "eos_token_ids": [1], "context_length": 8, "chat_template": {"message": "{who}"}}""", "generation.chat_template.message")]
    public void Deserialize_BadGeneration_NamesTheField(string generation, string error)
    {
        var e = Assert.Throws<InvalidDataException>(() => ModelManifestJson.Deserialize(Encoding.UTF8.GetBytes(Json(generation))));

        Assert.Contains(error, e.Message);
    }

    [Fact]
    public void Deserialize_Speculative_ReadsAndRoundTripsIt()
    {
        const string draft = """{"tokenizer": {"kind": "tiktoken", "file": "x"}, "eos_token_ids": [1], "context_length": 8, "speculative": {"draft": "lm-bench-draft", "k": 5}}""";
        const string lookup = """{"tokenizer": {"kind": "tiktoken", "file": "x"}, "eos_token_ids": [1], "context_length": 8, "speculative": {"prompt_lookup": true}}""";

        var withDraft = ModelManifestJson.Deserialize(Encoding.UTF8.GetBytes(Json(draft)));
        var withLookup = ModelManifestJson.Deserialize(Encoding.UTF8.GetBytes(Json(lookup)));

        Assert.Equal(new SpeculativeSpec { Draft = "lm-bench-draft", K = 5 }, withDraft.Generation!.Speculative);
        Assert.Equal(new SpeculativeSpec { PromptLookup = true, K = 4, Ngram = 3 }, withLookup.Generation!.Speculative);
        Assert.Equal(withDraft.Generation.Speculative, ModelManifestJson.Deserialize(ModelManifestJson.Serialize(withDraft)).Generation!.Speculative);
        Assert.Equal(withLookup.Generation.Speculative, ModelManifestJson.Deserialize(ModelManifestJson.Serialize(withLookup)).Generation!.Speculative);
    }

    [Theory]
    [InlineData("""{}""", "generation.speculative needs a proposer")]
    [InlineData("""{"draft": "d", "prompt_lookup": true}""", "generation.speculative takes one proposer")]
    [InlineData("""{"draft": "../d"}""", "generation.speculative.draft must be a model name")]
    [InlineData("""{"prompt_lookup": true, "k": 0}""", "generation.speculative.k must be between 1 and 16")]
    [InlineData("""{"prompt_lookup": true, "k": 17}""", "generation.speculative.k must be between 1 and 16")]
    [InlineData("""{"prompt_lookup": true, "ngram": 9}""", "generation.speculative.ngram must be between 1 and 8")]
    public void Deserialize_BadSpeculative_NamesTheField(string speculative, string error)
    {
        var generation = $$"""{"tokenizer": {"kind": "tiktoken", "file": "x"}, "eos_token_ids": [1], "context_length": 8, "speculative": {{speculative}}}""";

        var e = Assert.Throws<InvalidDataException>(() => ModelManifestJson.Deserialize(Encoding.UTF8.GetBytes(Json(generation))));

        Assert.Contains(error, e.Message);
    }

    [Fact]
    public void Deserialize_TextGenerationWithoutGeneration_SaysItIsMissing()
    {
        var json = $$"""{"name": "m", "sha256": "{{Sha}}", "size_bytes": 1, "task": "text-generation"}""";

        var e = Assert.Throws<InvalidDataException>(() => ModelManifestJson.Deserialize(Encoding.UTF8.GetBytes(json)));

        Assert.Contains("'generation' is missing", e.Message);
    }

    [Fact]
    public void Deserialize_UnknownTask_IsRefused()
    {
        var json = $$"""{"name": "m", "sha256": "{{Sha}}", "size_bytes": 1, "task": "fill-mask", "inputs": [], "outputs": []}""";

        var e = Assert.Throws<InvalidDataException>(() => ModelManifestJson.Deserialize(Encoding.UTF8.GetBytes(json)));

        Assert.Contains("'task' must be 'text-generation' or absent", e.Message);
    }

    [Fact]
    public void Deserialize_GenerationWithoutTask_IsRefused()
    {
        var json = $$$"""{"name": "m", "sha256": "{{{Sha}}}", "size_bytes": 1, "inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}], "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}], "generation": {}}""";

        var e = Assert.Throws<InvalidDataException>(() => ModelManifestJson.Deserialize(Encoding.UTF8.GetBytes(json)));

        Assert.Contains("'generation' needs", e.Message);
    }
}
