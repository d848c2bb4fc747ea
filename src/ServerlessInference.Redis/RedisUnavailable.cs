using StackExchange.Redis;

namespace ServerlessInference.Redis;

/// <summary>Turns "Redis cannot be reached" into the platform's 503 (<see cref="InferenceError.Unavailable"/>).</summary>
internal static class RedisUnavailable
{
    /// <summary>True for failures that mean the server is down or unreachable, not that a command was wrong.</summary>
    public static bool IsOutage(Exception exception) =>
        exception is RedisConnectionException or RedisTimeoutException
        || (exception is RedisServerException server && server.Message.StartsWith("LOADING", StringComparison.Ordinal));

    public static InferenceException Wrap(Exception exception, string what, int retryAfterSeconds) =>
        new(InferenceError.Unavailable, $"{what} is unavailable (Redis cannot be reached); retry later", exception)
        {
            RetryAfterSeconds = retryAfterSeconds,
        };
}
