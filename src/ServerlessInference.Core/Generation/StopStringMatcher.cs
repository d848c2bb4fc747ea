namespace ServerlessInference.Generation;

/// <summary>Finds stop strings in streamed text, holding back any tail that could still become one.</summary>
/// <remarks>Not thread-safe: one per sequence.</remarks>
public sealed class StopStringMatcher(IReadOnlyList<string> stops)
{
    private string _held = "";

    /// <summary>Adds <paramref name="text"/>; returns the text now safe to emit and whether a stop string was found
    /// (then the text is everything before it, and the rest is dropped).</summary>
    public (string Release, bool Stopped) Add(string text)
    {
        if (stops.Count == 0)
        {
            return (text, false);
        }

        _held += text;
        var first = -1;
        foreach (var stop in stops)
        {
            var at = _held.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first))
            {
                first = at;
            }
        }

        if (first >= 0)
        {
            var before = _held[..first];
            _held = "";
            return (before, true);
        }

        var keep = 0;
        foreach (var stop in stops)
        {
            for (var length = Math.Min(stop.Length - 1, _held.Length); length > keep; length--)
            {
                if (_held.AsSpan(_held.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    keep = length;
                    break;
                }
            }
        }

        var release = _held[..^keep];
        _held = _held[^keep..];
        return (release, false);
    }

    /// <summary>The held-back text, for an end that is not a stop string.</summary>
    public string Flush()
    {
        var held = _held;
        _held = "";
        return held;
    }
}
