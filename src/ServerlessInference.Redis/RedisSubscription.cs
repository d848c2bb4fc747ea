using StackExchange.Redis;

namespace ServerlessInference.Redis;

/// <summary>One pub/sub subscription of a Redis provider, made when first needed and made again after it failed.</summary>
/// <remarks>Thread-safe. <see cref="EnsureAsync"/> after <see cref="DisposeAsync"/> throws <see cref="ObjectDisposedException"/>;
/// disposing unsubscribes when the subscription was made, and a connection that is already gone is not an error.</remarks>
internal sealed class RedisSubscription(IConnectionMultiplexer redis, RedisChannel channel, Action<RedisChannel, RedisValue> handler, Func<Task>? before = null)
    : IAsyncDisposable
{
    private readonly Lock _lock = new();
    private Task? _subscribed;
    private bool _disposed;

    /// <summary>Subscribed, after <c>before</c> (e.g. creating a consumer group) has run; a faulted or cancelled earlier
    /// attempt is tried again.</summary>
    public Task EnsureAsync()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_subscribed is null || _subscribed.IsFaulted || _subscribed.IsCanceled)
            {
                _subscribed = SubscribeAsync();
            }

            return _subscribed;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Task? subscribed;
        lock (_lock)
        {
            _disposed = true;
            subscribed = _subscribed;
        }

        if (subscribed is { IsCompletedSuccessfully: true })
        {
            try
            {
                await redis.GetSubscriber().UnsubscribeAsync(channel, handler).ConfigureAwait(false);
            }
            catch (Exception ex) when (RedisUnavailable.IsOutage(ex) || ex is ObjectDisposedException)
            {
                // The connection is gone; so is the subscription.
            }
        }
    }

    private async Task SubscribeAsync()
    {
        if (before is not null)
        {
            await before().ConfigureAwait(false);
        }

        await redis.GetSubscriber().SubscribeAsync(channel, handler).ConfigureAwait(false);
    }
}
