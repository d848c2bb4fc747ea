using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ServerlessInference.Generation;

namespace ServerlessInference.Onnx.Demo;

/// <summary>The byte-level BPE tokenizer files of the demo language models, trained in code on a generated corpus:
/// <c>vocab.json</c> and <c>merges.txt</c> in GPT-2's format, deterministic for a given size and seed.</summary>
/// <remarks>Ids 0–255 are the 256 single bytes (in GPT-2's byte-to-unicode alphabet), then one id per merge in merge
/// order, and the last id is <see cref="EndOfText"/>. The corpus is pseudo-words of Latin syllables with a few
/// accented and CJK words, so some tokens are partial UTF-8 sequences. Only the files are made here; encoding and
/// decoding go through Microsoft.ML.Tokenizers.</remarks>
public static class DemoTokenizer
{
    public const string EndOfText = "<|endoftext|>";
    public const string VocabFile = "vocab.json";
    public const string MergesFile = "merges.txt";

    private static readonly string[] s_onsets = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "th", "sh", "ch", "st", "tr"];
    private static readonly string[] s_vowels = ["a", "e", "i", "o", "u", "ai", "ou", "é", "ü"];
    private static readonly string[] s_rare = ["日本", "東京", "café", "naïve", "straße", "ñandú", "Ωmega", "😀"];
    private static readonly string[] s_punctuation = [".", ",", "!", "?", ";", ":"];

    /// <summary>The vocabulary (<c>vocab.json</c>) and merges (<c>merges.txt</c>) of a tokenizer with exactly
    /// <paramref name="vocabularySize"/> ids (at least 257: bytes and the end token).</summary>
    public static (string VocabJson, string MergesText) Build(int vocabularySize, int seed)
    {
        if (vocabularySize < 257)
        {
            throw new ArgumentOutOfRangeException(nameof(vocabularySize), vocabularySize, "a byte-level vocabulary needs at least 257 ids");
        }

        var byteChars = ByteToUnicode();
        var wordCounts = CountWords(Corpus(Math.Max(4_000, vocabularySize * 12), seed), byteChars);
        var merges = Train(wordCounts, vocabularySize - 257);
        if (merges.Count < vocabularySize - 257)
        {
            throw new InvalidOperationException($"the corpus yields {merges.Count} merges; {vocabularySize - 257} are needed");
        }

        var vocabulary = new List<string>(vocabularySize);
        vocabulary.AddRange(byteChars.Select(c => c.ToString()));
        vocabulary.AddRange(merges.Select(m => m.Left + m.Right));
        vocabulary.Add(EndOfText);

        var json = new StringBuilder();
        using (var buffer = new MemoryStream())
        {
            using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            {
                writer.WriteStartObject();
                for (var id = 0; id < vocabulary.Count; id++)
                {
                    writer.WriteNumber(vocabulary[id], id);
                }

                writer.WriteEndObject();
            }

            json.Append(Encoding.UTF8.GetString(buffer.ToArray()));
        }

        var mergesText = new StringBuilder("#version: 0.2\n");
        foreach (var (left, right) in merges)
        {
            mergesText.Append(left).Append(' ').Append(right).Append('\n');
        }

        return (json.ToString(), mergesText.ToString());
    }

    /// <summary>The tokenizer spec of the demo models (files carried in the ONNX model's metadata).</summary>
    public static TokenizerSpec Spec(int vocabularySize) => new()
    {
        Kind = TokenizerKinds.Bpe,
        Vocab = VocabFile,
        Merges = MergesFile,
        SpecialTokens = new Dictionary<string, int> { [EndOfText] = vocabularySize - 1 },
    };

    /// <summary>GPT-2's reversible map from bytes to printable characters (<c>bytes_to_unicode</c>).</summary>
    public static char[] ByteToUnicode()
    {
        var map = new char[256];
        var assigned = new bool[256];
        foreach (var (from, to) in new[] { ('!', '~'), ('¡', '¬'), ('®', 'ÿ') })
        {
            for (int b = from; b <= to; b++)
            {
                map[b] = (char)b;
                assigned[b] = true;
            }
        }

        var next = 0;
        for (var b = 0; b < 256; b++)
        {
            if (!assigned[b])
            {
                map[b] = (char)(256 + next++);
            }
        }

        return map;
    }

    private static string Corpus(int words, int seed)
    {
        var random = new DemoRandom((ulong)seed);
        var text = new StringBuilder();
        for (var i = 0; i < words; i++)
        {
            if (i > 0)
            {
                text.Append(random.Next(12) == 0 ? "\n" : " ");
            }

            if (random.Next(40) == 0)
            {
                text.Append(s_rare[random.Next(s_rare.Length)]);
            }
            else
            {
                // Zipf-like: a few common words, a long tail of rarer ones, so merges grow from syllables to words.
                var word = new DemoRandom((ulong)(seed ^ (long)(random.Next(1 + random.Next(3000)) * 7919L)));
                var syllables = 1 + word.Next(3);
                for (var s = 0; s < syllables; s++)
                {
                    text.Append(s_onsets[word.Next(s_onsets.Length)]).Append(s_vowels[word.Next(s_vowels.Length)]);
                }
            }

            if (random.Next(9) == 0)
            {
                text.Append(s_punctuation[random.Next(s_punctuation.Length)]);
            }
        }

        return text.ToString();
    }

    private static Dictionary<string, int> CountWords(string corpus, char[] byteChars)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (Match match in Regex.Matches(corpus, TokenizerSpec.Gpt2Pattern))
        {
            var bytes = Encoding.UTF8.GetBytes(match.Value);
            var word = new string(Array.ConvertAll(bytes, b => byteChars[b]));
            counts[word] = counts.GetValueOrDefault(word) + 1;
        }

        return counts;
    }

    private static List<(string Left, string Right)> Train(Dictionary<string, int> wordCounts, int mergeCount)
    {
        // Symbols are ids into `strings`; a pair is one long key, so counting stays cheap.
        var strings = new List<string>();
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        int Id(string symbol)
        {
            if (!ids.TryGetValue(symbol, out var id))
            {
                id = strings.Count;
                strings.Add(symbol);
                ids.Add(symbol, id);
            }

            return id;
        }

        var words = wordCounts.OrderBy(pair => pair.Key, StringComparer.Ordinal)
            .Select(pair => (Symbols: pair.Key.Select(c => Id(c.ToString())).ToList(), Count: pair.Value))
            .ToList();
        var merges = new List<(string, string)>(mergeCount);
        var known = new HashSet<string>(StringComparer.Ordinal);
        var pairs = new Dictionary<long, int>();
        while (merges.Count < mergeCount)
        {
            pairs.Clear();
            foreach (var (symbols, count) in words)
            {
                for (var i = 0; i + 1 < symbols.Count; i++)
                {
                    var pair = ((long)symbols[i] << 32) | (uint)symbols[i + 1];
                    pairs[pair] = pairs.GetValueOrDefault(pair) + count;
                }
            }

            if (pairs.Count == 0)
            {
                break;
            }

            long best = 0;
            var bestCount = -1;
            foreach (var (pair, count) in pairs)
            {
                if (count > bestCount || (count == bestCount && Compare(Strings(pair), Strings(best)) < 0))
                {
                    (best, bestCount) = (pair, count);
                }
            }

            var (left, right) = Strings(best);
            var merged = left + right;
            if (known.Add(merged))
            {
                // Two merges can spell the same token ("a"+"bc", "ab"+"c"); the vocabulary keeps one id per string.
                merges.Add((left, right));
            }

            int leftId = (int)(best >> 32), rightId = (int)(uint)best, mergedId = Id(merged);
            foreach (var (symbols, _) in words)
            {
                for (var i = 0; i + 1 < symbols.Count; i++)
                {
                    if (symbols[i] == leftId && symbols[i + 1] == rightId)
                    {
                        symbols[i] = mergedId;
                        symbols.RemoveAt(i + 1);
                    }
                }
            }
        }

        return merges;

        (string Left, string Right) Strings(long pair) => (strings[(int)(pair >> 32)], strings[(int)(uint)pair]);
    }

    private static int Compare((string Left, string Right) a, (string Left, string Right) b)
    {
        var left = string.CompareOrdinal(a.Left, b.Left);
        return left != 0 ? left : string.CompareOrdinal(a.Right, b.Right);
    }
}

/// <summary>SplitMix64 (Steele, Lea, Flood 2014): integer-only, so its stream is the same everywhere.</summary>
internal struct DemoRandom(ulong state)
{
    private ulong _state = state;

    public ulong NextUInt64()
    {
        _state += 0x9E3779B97F4A7C15UL;
        var z = _state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, <paramref name="bound"/>).</summary>
    public int Next(int bound) => (int)(NextUInt64() % (ulong)bound);

    /// <summary>Uniform in [-1, 1) with 24 random bits, exact in both float and double.</summary>
    public double NextSigned() => ((NextUInt64() >> 40) * (1.0 / (1 << 23))) - 1.0;
}
