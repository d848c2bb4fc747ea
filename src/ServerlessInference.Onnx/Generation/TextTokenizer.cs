using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using ServerlessInference.Generation;

namespace ServerlessInference.Onnx.Generation;

/// <summary>An <see cref="ITextTokenizer"/> over Microsoft.ML.Tokenizers: byte-level BPE from <c>vocab.json</c> +
/// <c>merges.txt</c>, or a tiktoken rank file.</summary>
/// <remarks>Immutable and thread-safe. Special tokens (<see cref="TokenizerSpec.SpecialTokens"/>) are matched whole when
/// encoding and decode to nothing.</remarks>
public sealed class TextTokenizer : ITextTokenizer
{
    private readonly Tokenizer _tokenizer;
    private readonly HashSet<int> _specialIds;

    private TextTokenizer(Tokenizer tokenizer, IReadOnlyDictionary<string, int>? specialTokens, int vocabularySize)
    {
        _tokenizer = tokenizer;
        _specialIds = specialTokens is null ? [] : [.. specialTokens.Values];
        VocabularySize = vocabularySize;
    }

    public int VocabularySize { get; }

    /// <summary>Reads the files <paramref name="spec"/> names through <paramref name="openFile"/> (null: no such file).</summary>
    /// <exception cref="InvalidDataException">A file is missing or not in its format; the message names the field.</exception>
    public static TextTokenizer Load(TokenizerSpec spec, Func<string, Stream?> openFile)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(openFile);
        var problems = spec.Validate();
        if (problems.Count > 0)
        {
            throw new InvalidDataException(string.Join("; ", problems));
        }

        var specialTokens = spec.SpecialTokens is null ? null : new Dictionary<string, int>(spec.SpecialTokens, StringComparer.Ordinal);
        var preTokenizer = new RegexPreTokenizer(new Regex(spec.Pattern ?? TokenizerSpec.Gpt2Pattern, RegexOptions.Compiled), specialTokens);
        try
        {
            return spec.Kind == TokenizerKinds.Tiktoken
                ? LoadTiktoken(spec, openFile, specialTokens, preTokenizer)
                : LoadBpe(spec, openFile, specialTokens, preTokenizer);
        }
        catch (Exception e) when (e is JsonException or ArgumentException or FormatException or InvalidOperationException)
        {
            throw new InvalidDataException($"generation.tokenizer: the {spec.Kind} files cannot be read: {e.Message}", e);
        }
    }

    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return _tokenizer.EncodeToIds(text);
    }

    public string Decode(IEnumerable<int> tokenIds)
    {
        ArgumentNullException.ThrowIfNull(tokenIds);
        return _tokenizer.Decode(_specialIds.Count == 0 ? tokenIds : tokenIds.Where(id => !_specialIds.Contains(id)));
    }

    private static TextTokenizer LoadBpe(TokenizerSpec spec, Func<string, Stream?> openFile, Dictionary<string, int>? specialTokens, PreTokenizer preTokenizer)
    {
        Dictionary<string, int> vocabulary;
        using (var vocab = Open(openFile, spec.Vocab!, "generation.tokenizer.vocab"))
        {
            vocabulary = JsonSerializer.Deserialize(vocab, GenerationJsonContext.Default.DictionaryStringInt32)
                ?? throw new InvalidDataException($"generation.tokenizer.vocab '{spec.Vocab}' is null");
        }

        var merges = new List<string>();
        using (var reader = new StreamReader(Open(openFile, spec.Merges!, "generation.tokenizer.merges")))
        {
            while (reader.ReadLine() is { } line)
            {
                if (line.Length > 0 && !line.StartsWith("#version", StringComparison.Ordinal))
                {
                    merges.Add(line);
                }
            }
        }

        var size = vocabulary.Count == 0 ? 0 : vocabulary.Values.Max() + 1;
        if (specialTokens is not null)
        {
            foreach (var (text, id) in specialTokens)
            {
                vocabulary.TryAdd(text, id);
                size = Math.Max(size, id + 1);
            }
        }

        var tokenizer = BpeTokenizer.Create(new BpeOptions(vocabulary)
        {
            Merges = merges,
            ByteLevel = true,
            PreTokenizer = preTokenizer,
            SpecialTokens = specialTokens,
        });
        return new TextTokenizer(tokenizer, specialTokens, size);
    }

    private static TextTokenizer LoadTiktoken(TokenizerSpec spec, Func<string, Stream?> openFile, Dictionary<string, int>? specialTokens, PreTokenizer preTokenizer)
    {
        // The tokenizer keeps its rank tables internal; the highest rank gives the vocabulary size.
        var bytes = new MemoryStream();
        using (var file = Open(openFile, spec.File!, "generation.tokenizer.file"))
        {
            file.CopyTo(bytes);
        }

        var size = 0;
        bytes.Position = 0;
        using (var reader = new StreamReader(bytes, leaveOpen: true))
        {
            while (reader.ReadLine() is { } line)
            {
                var space = line.LastIndexOf(' ');
                if (space > 0 && int.TryParse(line.AsSpan(space + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var rank))
                {
                    size = Math.Max(size, rank + 1);
                }
            }
        }

        bytes.Position = 0;
        var tokenizer = TiktokenTokenizer.Create(bytes, preTokenizer, normalizer: null, specialTokens);
        if (specialTokens is { Count: > 0 })
        {
            size = Math.Max(size, specialTokens.Values.Max() + 1);
        }

        return new TextTokenizer(tokenizer, specialTokens, size);
    }

    private static Stream Open(Func<string, Stream?> openFile, string name, string field) =>
        openFile(name) ?? throw new InvalidDataException($"{field}: the file '{name}' is neither beside the weights nor in the model's metadata");
}

[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, int>))]
internal sealed partial class GenerationJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
