using ServerlessInference.Security;

namespace ServerlessInference.Redis.Tests;

[Collection(RedisCollection.Name)]
public sealed class RedisApiKeyStoreTests(RedisFixture redis)
{
    [Fact]
    public async Task AddGetListRevoke_RoundTripsTheRecordWithoutTheKey()
    {
        var options = redis.Options();
        var store = new RedisApiKeyStore(redis.Redis, RedisFixture.Wrap(options));
        var (key, record) = ApiKeys.Create("acme", admin: true, 2.5, 5, 3, DateTimeOffset.UnixEpoch);
        var (_, second) = ApiKeys.Create("beta", admin: false, null, null, null, DateTimeOffset.UnixEpoch);
        Assert.False(await store.AnyAsync(default));

        await store.AddAsync(record, default);
        await store.AddAsync(second, default);

        var stored = await store.GetAsync(record.Id, default);
        Assert.Equal(record, stored);
        Assert.True(ApiKeys.Matches(key, stored!));
        Assert.True(await store.AnyAsync(default));
        Assert.Equal([record.Id, second.Id], (await store.ListAsync(default)).Select(k => k.Id));
        var raw = (string)(await redis.Database.HashGetAsync(options.KeyPrefix + "auth:keys", record.Id))!;
        Assert.DoesNotContain(key, raw, StringComparison.Ordinal);
        Assert.Contains(record.Sha256, raw, StringComparison.Ordinal);

        Assert.True(await store.RevokeAsync(record.Id, default));
        Assert.False(await store.RevokeAsync(record.Id, default));
        Assert.Null(await store.GetAsync(record.Id, default));
        Assert.Equal([second.Id], (await store.ListAsync(default)).Select(k => k.Id));
    }

    [Fact]
    public async Task AddAsync_SameIdTwice_Throws()
    {
        var store = new RedisApiKeyStore(redis.Redis, RedisFixture.Wrap(redis.Options()));
        var (_, record) = ApiKeys.Create("acme", false, null, null, null, DateTimeOffset.UnixEpoch);
        await store.AddAsync(record, default);

        await Assert.ThrowsAsync<InvalidOperationException>(() => store.AddAsync(record with { Tenant = "evil" }, default).AsTask());
        Assert.Equal("acme", (await store.GetAsync(record.Id, default))!.Tenant);
    }
}
