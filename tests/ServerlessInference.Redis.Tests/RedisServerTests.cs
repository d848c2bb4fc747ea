using ServerlessInference.Testing.Services;
using StackExchange.Redis;

namespace ServerlessInference.Redis.Tests;

/// <summary>The test helper's Redis runs as the platform deploys it: no eviction, and the append-only sync asked for.</summary>
public sealed class RedisServerTests
{
    [Fact]
    public async Task StartAsync_AppendFsyncAlways_ServerSyncsEveryWriteAndNeverEvicts()
    {
        await using var server = await RedisServer.StartAsync(appendOnly: true, appendFsync: "always");
        await using var admin = await ConnectionMultiplexer.ConnectAsync(server.ConnectionString + ",allowAdmin=true");
        var config = (await admin.GetServers()[0].ConfigGetAsync("*")).ToDictionary(p => p.Key, p => p.Value);

        Assert.Equal("yes", config["appendonly"]);
        Assert.Equal("always", config["appendfsync"]);
        Assert.Equal("noeviction", config["maxmemory-policy"]);
    }

    [Fact]
    public async Task StartAsync_UnknownAppendFsync_IsRefused()
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => RedisServer.StartAsync(appendOnly: true, appendFsync: "sometimes"));
    }
}
