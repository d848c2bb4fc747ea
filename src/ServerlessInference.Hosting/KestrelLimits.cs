using System.Globalization;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;

namespace ServerlessInference.Hosting;

/// <summary>Kestrel's limits for slow clients and for connections, with this platform's defaults, read from the standard
/// <c>Kestrel:Limits</c> section (<c>Kestrel:Limits:KeepAliveTimeout</c>,
/// <c>Kestrel:Limits:MinRequestBodyDataRate:BytesPerSecond</c>, ...). Read once at start-up: a value that is not a
/// number or time span, or is out of range, stops the host with a message naming the setting.</summary>
/// <remarks>What they guard against: a client that opens many connections (<see cref="MaxConcurrentConnections"/>),
/// sends its headers slowly or huge (<see cref="RequestHeadersTimeout"/>, <see cref="MaxRequestHeadersTotalSize"/>),
/// trickles a body to hold a connection and its buffer (<see cref="MinRequestBodyDataRate"/>), or idles between requests
/// (<see cref="KeepAliveTimeout"/>). A rate of 0 bytes per second turns that rate check off.</remarks>
public sealed record KestrelLimits
{
    public const string Section = "Kestrel:Limits";

    public long MaxConcurrentConnections { get; init; } = 2048;

    public long MaxConcurrentUpgradedConnections { get; init; } = 2048;

    public int MaxRequestHeadersTotalSize { get; init; } = 32 * 1024;

    public int MaxRequestHeaderCount { get; init; } = 100;

    public int MaxRequestLineSize { get; init; } = 8 * 1024;

    public TimeSpan RequestHeadersTimeout { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan KeepAliveTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>A body slower than this after its grace period is cut off (Kestrel's default is 240 B/s).</summary>
    public MinDataRate? MinRequestBodyDataRate { get; init; } = new(bytesPerSecond: 1024, gracePeriod: TimeSpan.FromSeconds(5));

    /// <summary>A client that reads a response slower than this is cut off (Kestrel's default; checked only while bytes
    /// are waiting to be sent, so an idle token stream is not affected).</summary>
    public MinDataRate? MinResponseDataRate { get; init; } = new(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(5));

    /// <summary>The defaults, with whatever <paramref name="configuration"/> sets under <see cref="Section"/>.</summary>
    /// <exception cref="InvalidOperationException">A value that cannot be read or is out of range; the message names it.</exception>
    public static KestrelLimits Read(IConfiguration configuration)
    {
        var section = configuration.GetSection(Section);
        var defaults = new KestrelLimits();
        return new KestrelLimits
        {
            MaxConcurrentConnections = Number(section, nameof(MaxConcurrentConnections), defaults.MaxConcurrentConnections, 1, long.MaxValue),
            MaxConcurrentUpgradedConnections = Number(section, nameof(MaxConcurrentUpgradedConnections), defaults.MaxConcurrentUpgradedConnections, 0, long.MaxValue),
            MaxRequestHeadersTotalSize = (int)Number(section, nameof(MaxRequestHeadersTotalSize), defaults.MaxRequestHeadersTotalSize, 1024, int.MaxValue),
            MaxRequestHeaderCount = (int)Number(section, nameof(MaxRequestHeaderCount), defaults.MaxRequestHeaderCount, 1, int.MaxValue),
            MaxRequestLineSize = (int)Number(section, nameof(MaxRequestLineSize), defaults.MaxRequestLineSize, 256, int.MaxValue),
            RequestHeadersTimeout = Duration(section, nameof(RequestHeadersTimeout), defaults.RequestHeadersTimeout),
            KeepAliveTimeout = Duration(section, nameof(KeepAliveTimeout), defaults.KeepAliveTimeout),
            MinRequestBodyDataRate = Rate(section, nameof(MinRequestBodyDataRate), defaults.MinRequestBodyDataRate!),
            MinResponseDataRate = Rate(section, nameof(MinResponseDataRate), defaults.MinResponseDataRate!),
        };
    }

    /// <summary>Sets these limits on <paramref name="limits"/>.</summary>
    public void ApplyTo(KestrelServerLimits limits)
    {
        limits.MaxConcurrentConnections = MaxConcurrentConnections;
        limits.MaxConcurrentUpgradedConnections = MaxConcurrentUpgradedConnections;
        limits.MaxRequestHeadersTotalSize = MaxRequestHeadersTotalSize;
        limits.MaxRequestHeaderCount = MaxRequestHeaderCount;
        limits.MaxRequestLineSize = MaxRequestLineSize;
        limits.RequestHeadersTimeout = RequestHeadersTimeout;
        limits.KeepAliveTimeout = KeepAliveTimeout;
        limits.MinRequestBodyDataRate = MinRequestBodyDataRate;
        limits.MinResponseDataRate = MinResponseDataRate;
    }

    private static long Number(IConfigurationSection section, string name, long fallback, long min, long max)
    {
        var text = section[name];
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }

        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : throw Invalid(name, text, $"an integer from {min} to {max}");
    }

    private static TimeSpan Duration(IConfigurationSection section, string name, TimeSpan fallback)
    {
        var text = section[name];
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var value) && value > TimeSpan.Zero
            ? value
            : throw Invalid(name, text, "a positive time span such as 00:00:10");
    }

    private static MinDataRate? Rate(IConfigurationSection section, string name, MinDataRate fallback)
    {
        var rate = section.GetSection(name);
        var bytesText = rate["BytesPerSecond"];
        var graceText = rate["GracePeriod"];
        var bytes = fallback.BytesPerSecond;
        if (!string.IsNullOrWhiteSpace(bytesText)
            && (!double.TryParse(bytesText, NumberStyles.Float, CultureInfo.InvariantCulture, out bytes) || !double.IsFinite(bytes) || bytes < 0))
        {
            throw Invalid(name + ":BytesPerSecond", bytesText, "a non-negative number (0 turns the check off)");
        }

        var grace = fallback.GracePeriod;
        if (!string.IsNullOrWhiteSpace(graceText)
            && (!TimeSpan.TryParse(graceText, CultureInfo.InvariantCulture, out grace) || grace <= TimeSpan.FromSeconds(1)))
        {
            throw Invalid(name + ":GracePeriod", graceText, "a time span longer than one second (Kestrel's heartbeat)");
        }

        return bytes == 0 ? null : new MinDataRate(bytes, grace);
    }

    private static InvalidOperationException Invalid(string name, string value, string expected) =>
        new($"{Section}:{name} is '{value}'; it must be {expected}");
}
