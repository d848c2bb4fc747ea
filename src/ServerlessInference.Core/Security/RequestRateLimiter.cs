using System.Collections.Concurrent;

namespace ServerlessInference.Security;

/// <summary>A token bucket per key: <c>rate</c> tokens a second up to <c>burst</c>, one per request. In this process
/// only: with several gateway instances each allows a key its full rate.</summary>
/// <remarks>Thread-safe. Time comes from the injected <see cref="TimeProvider"/>.</remarks>
public sealed class RequestRateLimiter(TimeProvider timeProvider)
{
    private readonly ConcurrentDictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);

    /// <summary>Takes one token from <paramref name="keyId"/>'s bucket. When it is empty, returns false and the whole
    /// seconds until a token is back (at least 1).</summary>
    public bool TryTake(string keyId, double rate, int burst, out int retryAfterSeconds)
    {
        var now = timeProvider.GetTimestamp();
        var bucket = _buckets.GetOrAdd(keyId, _ => new Bucket(burst, now));
        lock (bucket)
        {
            var elapsed = timeProvider.GetElapsedTime(bucket.Stamp, now).TotalSeconds;
            bucket.Tokens = Math.Min(burst, bucket.Tokens + (elapsed * rate));
            bucket.Stamp = now;
            if (bucket.Tokens >= 1)
            {
                bucket.Tokens -= 1;
                retryAfterSeconds = 0;
                return true;
            }

            retryAfterSeconds = (int)Math.Max(1, Math.Ceiling((1 - bucket.Tokens) / rate));
            return false;
        }
    }

    private sealed class Bucket(double tokens, long stamp)
    {
        public double Tokens { get; set; } = tokens;

        public long Stamp { get; set; } = stamp;
    }
}
