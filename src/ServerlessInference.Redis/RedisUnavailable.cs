using StackExchange.Redis;

namespace ServerlessInference.Redis;

/// <summary>Turns "Redis cannot be reached" into the platform's 503 (<see cref="InferenceError.Unavailable"/>) for one
/// component: every Redis provider holds one and runs its calls through <see cref="RunAsync{T}"/>.</summary>
/// <param name="what">The component as a client should read it, e.g. "the job queue".</param>
/// <param name="retryAfterSeconds">The Retry-After a client is given.</param>
internal sealed class RedisUnavailable(string what, int retryAfterSeconds)
{
    /// <summary>True for failures that mean the server is down or unreachable, not that a command was wrong.</summary>
    public static bool IsOutage(Exception exception) =>
        exception is RedisConnectionException or RedisTimeoutException
        || (exception is RedisServerException server && server.Message.StartsWith("LOADING", StringComparison.Ordinal));

    /// <summary>The 503 for an outage <paramref name="exception"/>.</summary>
    public InferenceException Wrap(Exception exception) =>
        new(InferenceError.Unavailable, $"{what} is unavailable (Redis cannot be reached); retry later", exception)
        {
            RetryAfterSeconds = retryAfterSeconds,
        };

    /// <summary>Runs <paramref name="call"/>; an outage, thrown at once or by the task, becomes <see cref="Wrap"/>'s 503.</summary>
    public async Task<T> RunAsync<T>(Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (Exception ex) when (IsOutage(ex))
        {
            throw Wrap(ex);
        }
    }

    /// <inheritdoc cref="RunAsync{T}"/>
    public async Task RunAsync(Func<Task> call)
    {
        try
        {
            await call().ConfigureAwait(false);
        }
        catch (Exception ex) when (IsOutage(ex))
        {
            throw Wrap(ex);
        }
    }
}
