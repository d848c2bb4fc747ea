using Microsoft.Extensions.Options;
using ServerlessInference.Testing.Services;
using StackExchange.Redis;

namespace ServerlessInference.Redis.Tests;

/// <summary>One Redis for the whole test run (Testcontainers or a local redis-server) and one connection to it,
/// made the way the platform makes it. Tests isolate themselves with a key prefix of their own.</summary>
public sealed class RedisFixture : IAsyncLifetime
{
    public RedisServer Server { get; } = new();

    public IConnectionMultiplexer Redis { get; private set; } = null!;

    public IDatabase Database => Redis.GetDatabase();

    public async Task InitializeAsync()
    {
        await ((IAsyncLifetime)Server).InitializeAsync();
        Redis = RedisServiceCollectionExtensions.Connect(new RedisOptions { ConnectionString = Server.ConnectionString });
    }

    public async Task DisposeAsync()
    {
        if (Redis is not null)
        {
            await Redis.DisposeAsync();
        }

        await Server.DisposeAsync();
    }

    /// <summary>Settings with a key prefix no other test uses and a quick reclaim loop.</summary>
    public RedisOptions Options(string? consumer = null) => new()
    {
        ConnectionString = Server.ConnectionString,
        KeyPrefix = $"t{Guid.NewGuid():N}:",
        ReclaimInterval = TimeSpan.FromMilliseconds(100),
        ConsumerName = consumer ?? "test-consumer",
    };

    public static IOptions<T> Wrap<T>(T value)
        where T : class => Microsoft.Extensions.Options.Options.Create(value);
}

[CollectionDefinition(Name)]
public sealed class RedisCollection : ICollectionFixture<RedisFixture>
{
    public const string Name = "redis";
}
