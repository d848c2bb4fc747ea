namespace ServerlessInference.Generation;

/// <summary>Turns tokens into text one at a time, releasing text only once its UTF-8 is complete.</summary>
/// <remarks>Decodes a short window of recent tokens rather than the whole sequence (the prefix/read offsets of Hugging
/// Face's text-generation-inference), so each token costs O(1). The pieces returned by <see cref="Add"/> and
/// <see cref="Flush"/> concatenate to <see cref="ITextTokenizer.Decode"/> of all tokens, for a byte-level tokenizer
/// whose text is the concatenation of its tokens' bytes. Not thread-safe: one per sequence.</remarks>
public sealed class StreamingDetokenizer(ITextTokenizer tokenizer)
{
    private readonly List<int> _tokens = [];
    private int _prefixOffset;
    private int _readOffset;

    public IReadOnlyList<int> Tokens => _tokens;

    /// <summary>Adds a token; returns the text it completes (empty while a UTF-8 sequence is still open).</summary>
    public string Add(int tokenId)
    {
        _tokens.Add(tokenId);
        var prefixText = _readOffset > _prefixOffset ? tokenizer.Decode(Window(_prefixOffset, _readOffset)) : "";
        var newText = tokenizer.Decode(Window(_prefixOffset, _tokens.Count));
        if (newText.Length > prefixText.Length && !newText.EndsWith('\uFFFD') && newText.StartsWith(prefixText, StringComparison.Ordinal))
        {
            _prefixOffset = _readOffset;
            _readOffset = _tokens.Count;
            return newText[prefixText.Length..];
        }

        return "";
    }

    /// <summary>The text not yet released (an incomplete UTF-8 tail decodes to U+FFFD); call once at the end.</summary>
    public string Flush()
    {
        if (_readOffset == _tokens.Count)
        {
            return "";
        }

        var prefixText = _readOffset > _prefixOffset ? tokenizer.Decode(Window(_prefixOffset, _readOffset)) : "";
        var newText = tokenizer.Decode(Window(_prefixOffset, _tokens.Count));
        _prefixOffset = _readOffset = _tokens.Count;
        return newText.StartsWith(prefixText, StringComparison.Ordinal) ? newText[prefixText.Length..] : newText;
    }

    private IEnumerable<int> Window(int start, int end)
    {
        for (var i = start; i < end; i++)
        {
            yield return _tokens[i];
        }
    }
}
