using System.Globalization;

namespace ServerlessInference.Gateway;

/// <summary>The parts of RFC 7240 <c>Prefer</c> the gateway honours: <c>respond-async</c> and <c>wait=N</c>.</summary>
/// <remarks>The rule for <c>wait</c>: its value is a non-negative decimal number of seconds (digits, an optional fraction
/// and exponent, optionally quoted). A well-formed value larger than <see cref="GatewayOptions.MaxWait"/>, even one too
/// large for any clock, is capped to it (<see cref="EffectiveWait"/>); anything else (empty, negative, NaN, Infinity,
/// text) is a 400 naming the value. As RFC 7240 §2 says, only the first <c>wait</c> counts; later ones are ignored.</remarks>
public readonly record struct PreferHeader(bool RespondAsync, TimeSpan? Wait)
{
    /// <exception cref="InferenceException">A <c>wait</c> preference whose value is not a non-negative number (400).</exception>
    public static PreferHeader Parse(IEnumerable<string?> values)
    {
        var respondAsync = false;
        TimeSpan? wait = null;
        foreach (var value in values)
        {
            if (value is null)
            {
                continue;
            }

            foreach (var raw in value.Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (raw.Equals("respond-async", StringComparison.OrdinalIgnoreCase))
                {
                    respondAsync = true;
                }
                else if (wait is null && IsWait(raw))
                {
                    wait = ParseWait(raw);
                }
            }
        }

        return new PreferHeader(respondAsync, wait);
    }

    /// <summary>How long to wait: <c>respond-async</c> alone means not at all; <c>wait=N</c> caps it.</summary>
    public TimeSpan EffectiveWait(GatewayOptions options)
    {
        var wait = Wait ?? (RespondAsync ? TimeSpan.Zero : options.DefaultWait);
        return wait > options.MaxWait ? options.MaxWait : wait;
    }

    private static bool IsWait(string preference)
    {
        var equals = preference.IndexOf('=', StringComparison.Ordinal);
        var name = equals < 0 ? preference : preference[..equals];
        return name.Trim().Equals("wait", StringComparison.OrdinalIgnoreCase);
    }

    private static TimeSpan ParseWait(string preference)
    {
        var equals = preference.IndexOf('=', StringComparison.Ordinal);
        var text = equals < 0 ? "" : preference[(equals + 1)..].Trim();
        if (text.Length >= 2 && text[0] == '"' && text[^1] == '"')
        {
            text = text[1..^1];
        }

        // Digits first: this refuses "NaN", "Infinity", signs and hex before double.TryParse sees them.
        if (text.Length == 0 || !char.IsAsciiDigit(text[0])
            || !double.TryParse(text, NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out var seconds)
            || double.IsNaN(seconds))
        {
            var shown = text.Length > 40 ? text[..40] + "..." : text;
            throw new InferenceException(InferenceError.BadRequest,
                $"Prefer: wait must be a non-negative number of seconds, got '{shown}'");
        }

        // Far beyond any cap (1e400 even parses as infinity, and TimeSpan overflows near 1e12 s): the cap applies anyway.
        return seconds > 1e11 ? TimeSpan.MaxValue : TimeSpan.FromSeconds(seconds);
    }
}
