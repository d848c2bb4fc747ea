using System.Text;
using ServerlessInference.Generation;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.Onnx.Tests.Generation;

public sealed class TextTokenizerTests
{
    private static readonly string[] s_texts =
    [
        "hello world",
        "thou shai bazou, tichou!",
        "café 日本 straße 😀 naïve",
        "  two  spaces\nand a newline\t",
        "",
    ];

    [Fact]
    public void DemoBpe_EncodeThenDecode_GivesTheText()
    {
        var tokenizer = LmTestModels.TinyTokenizer;
        foreach (var text in s_texts)
        {
            var ids = tokenizer.Encode(text);
            Assert.All(ids, id => Assert.InRange(id, 0, tokenizer.VocabularySize - 1));
            Assert.Equal(text, tokenizer.Decode(ids));
        }
    }

    [Fact]
    public void DemoBpe_Merges_MakeFewerTokensThanBytes()
    {
        var text = "thou shai bazou tichou stai chou";
        Assert.True(LmTestModels.TinyTokenizer.Encode(text).Count < Encoding.UTF8.GetByteCount(text));
    }

    [Fact]
    public void DemoBpe_EndOfText_IsOneSpecialTokenThatDecodesToNothing()
    {
        var tokenizer = LmTestModels.TinyTokenizer;
        var eos = LmTestModels.Tiny.EndOfTextId;
        var ids = tokenizer.Encode("ab" + DemoTokenizer.EndOfText);

        Assert.Equal(eos, ids[^1]);
        Assert.Equal("ab", tokenizer.Decode(ids));
        Assert.Equal(LmTestModels.Tiny.VocabularySize, tokenizer.VocabularySize);
    }

    [Fact]
    public void DemoTokenizer_BuiltTwice_IsIdentical()
    {
        Assert.Equal(DemoTokenizer.Build(300, 7), DemoTokenizer.Build(300, 7));
    }

    [Fact]
    public void Tiktoken_FromTheDemoVocabulary_RoundTripsAndKnowsItsSpecialToken()
    {
        var (vocabJson, _) = DemoTokenizer.Build(LmTestModels.Tiny.VocabularySize, LmTestModels.Tiny.Seed);
        var tiktoken = new StringBuilder();
        var unicodeToByte = DemoTokenizer.ByteToUnicode().Select((c, b) => (c, b)).ToDictionary(p => p.c, p => (byte)p.b);
        foreach (var (token, id) in System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, int>>(vocabJson)!)
        {
            if (token != DemoTokenizer.EndOfText)
            {
                tiktoken.Append(Convert.ToBase64String([.. token.Select(c => unicodeToByte[c])])).Append(' ').Append(id).Append('\n');
            }
        }

        var eos = LmTestModels.Tiny.EndOfTextId;
        var spec = new TokenizerSpec
        {
            Kind = TokenizerKinds.Tiktoken,
            File = "demo.tiktoken",
            SpecialTokens = new Dictionary<string, int> { [DemoTokenizer.EndOfText] = eos },
        };
        var tokenizer = TextTokenizer.Load(spec, name => name == "demo.tiktoken" ? new MemoryStream(Encoding.UTF8.GetBytes(tiktoken.ToString())) : null);

        foreach (var text in s_texts)
        {
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
        }

        Assert.Equal(eos, tokenizer.Encode("x" + DemoTokenizer.EndOfText)[^1]);
        Assert.Equal(LmTestModels.Tiny.VocabularySize, tokenizer.VocabularySize);
    }

    [Fact]
    public void Load_MissingFile_NamesTheField()
    {
        var spec = DemoTokenizer.Spec(300);

        var error = Assert.Throws<InvalidDataException>(() => TextTokenizer.Load(spec, _ => null));

        Assert.Contains("generation.tokenizer.vocab", error.Message);
    }

    [Fact]
    public void Decode_PartialUtf8_GivesReplacementCharacter()
    {
        // Byte tokens 0xE6 0x97 are the first two bytes of '日'; ids 0-255 are the bytes themselves.
        Assert.EndsWith("\uFFFD", LmTestModels.TinyTokenizer.Decode([0xE6, 0x97]));
    }
}
