using System.Text;
using ServerlessInference.Generation;

namespace ServerlessInference.Tests.Generation;

public sealed class StreamingTextTests
{
    /// <summary>A byte-level tokenizer: id = byte.</summary>
    private sealed class ByteTokenizer : ITextTokenizer
    {
        public int VocabularySize => 256;

        public IReadOnlyList<int> Encode(string text) => [.. Encoding.UTF8.GetBytes(text).Select(b => (int)b)];

        public string Decode(IEnumerable<int> tokenIds) => Encoding.UTF8.GetString([.. tokenIds.Select(t => (byte)t)]);
    }

    [Fact]
    public void Add_MultiByteCharacter_ReleasedOnlyWhenComplete()
    {
        var detokenizer = new StreamingDetokenizer(new ByteTokenizer());
        var bytes = Encoding.UTF8.GetBytes("a日😀b");

        var pieces = bytes.Select(b => detokenizer.Add(b)).ToList();

        Assert.Equal(["a", "", "", "日", "", "", "", "😀", "b"], pieces);
        Assert.Equal("", detokenizer.Flush());
    }

    [Fact]
    public void Flush_IncompleteTail_GivesWhatDecodeGives()
    {
        var tokenizer = new ByteTokenizer();
        var detokenizer = new StreamingDetokenizer(tokenizer);
        int[] tokens = [.. Encoding.UTF8.GetBytes("ok"), 0xE6, 0x97];

        var text = string.Concat(tokens.Select(detokenizer.Add)) + detokenizer.Flush();

        Assert.Equal(tokenizer.Decode(tokens), text);
        Assert.EndsWith("\uFFFD", text);
    }

    [Fact]
    public void Add_RandomBytes_PiecesConcatenateToDecode()
    {
        var tokenizer = new ByteTokenizer();
        var random = new Random(5);
        for (var run = 0; run < 200; run++)
        {
            var tokens = Enumerable.Range(0, 40).Select(_ => random.Next(3) == 0 ? random.Next(128, 256) : random.Next(32, 128)).ToArray();
            var detokenizer = new StreamingDetokenizer(tokenizer);

            var text = string.Concat(tokens.Select(detokenizer.Add)) + detokenizer.Flush();

            Assert.Equal(tokenizer.Decode(tokens), text);
        }
    }

    [Fact]
    public void StopStrings_SplitAcrossPieces_FoundAndNotEmitted()
    {
        var matcher = new StopStringMatcher(["END", "zz"]);

        Assert.Equal(("hello ", false), matcher.Add("hello E"));
        Assert.Equal(("", false), matcher.Add("N"));
        Assert.Equal(("", true), matcher.Add("D wor"));
    }

    [Fact]
    public void StopStrings_FalseStart_ReleasedLater()
    {
        var matcher = new StopStringMatcher(["END"]);

        Assert.Equal(("ab", false), matcher.Add("abE"));
        Assert.Equal(("ENx", false), matcher.Add("Nx"));
        Assert.Equal("", matcher.Flush());
    }

    [Fact]
    public void StopStrings_Stop_ReturnsTextBeforeIt()
    {
        var matcher = new StopStringMatcher(["END"]);

        Assert.Equal(("one ", false), matcher.Add("one E"));
        Assert.Equal(("ENx two ", true), matcher.Add("Nx two END and more"));
    }

    [Fact]
    public void StopStrings_None_PassEverythingThrough()
    {
        var matcher = new StopStringMatcher([]);

        Assert.Equal(("abc", false), matcher.Add("abc"));
    }
}
