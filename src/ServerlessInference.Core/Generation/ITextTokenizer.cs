namespace ServerlessInference.Generation;

/// <summary>Turns text into token ids and back. Implementations are immutable and thread-safe.</summary>
public interface ITextTokenizer
{
    /// <summary>Token ids of <paramref name="text"/>; special tokens written in the text become their ids.</summary>
    IReadOnlyList<int> Encode(string text);

    /// <summary>The text of <paramref name="tokenIds"/>; byte sequences that are not complete UTF-8 become U+FFFD.
    /// Special tokens decode to nothing.</summary>
    string Decode(IEnumerable<int> tokenIds);

    /// <summary>Token ids are below this.</summary>
    int VocabularySize { get; }
}
