using System.Globalization;

namespace ServerlessInference.Gateway;

/// <summary>The parts of RFC 7240 <c>Prefer</c> the gateway honours: <c>respond-async</c> and <c>wait=N</c>.</summary>
public readonly record struct PreferHeader(bool RespondAsync, TimeSpan? Wait)
{
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
                else if (raw.StartsWith("wait=", StringComparison.OrdinalIgnoreCase)
                    && double.TryParse(raw.AsSpan(5).Trim('"'), NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds)
                    && seconds >= 0)
                {
                    wait = TimeSpan.FromSeconds(seconds);
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
}
