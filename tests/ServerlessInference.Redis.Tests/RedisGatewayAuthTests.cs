using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ServerlessInference.Hosting;
using ServerlessInference.Hosting.Providers;
using ServerlessInference.Security;

namespace ServerlessInference.Redis.Tests;

/// <summary>With results in Redis the composition keeps API keys there, and the gateway's check reads them: a key made
/// (as <c>keys create</c> does) admits at once, and stops admitting once revoked.</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisGatewayAuthTests(RedisFixture redis)
{
    [Fact]
    public async Task ResultsInRedis_KeysAreReadFromRedisByTheGatewayCheck_UntilRevoked()
    {
        var prefix = $"t{Guid.NewGuid():N}:";
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Inference:Results:Provider"] = "Redis",
            ["Inference:Redis:ConnectionString"] = redis.Server.ConnectionString,
            ["Inference:Redis:KeyPrefix"] = prefix,
        }).Build();
        var services = new ServiceCollection().AddLogging().AddSingleton<IConfiguration>(configuration);
        services.AddServerlessInference().AddProviders(ProviderChoice.Read(configuration));
        await using var provider = services.BuildServiceProvider();
        var store = provider.GetRequiredService<IApiKeyStore>();
        Assert.IsType<RedisApiKeyStore>(store);

        var anonymous = await AuthorizeAsync(provider, null);
        var (key, record) = ApiKeys.Create("acme", admin: false, null, null, null, DateTimeOffset.UtcNow);
        var (_, other) = ApiKeys.Create("beta", admin: false, null, null, null, DateTimeOffset.UtcNow);
        await store.AddAsync(record, default);
        await store.AddAsync(other, default); // stays, so the host is not open again once acme's key is revoked
        var keyed = await AuthorizeAsync(provider, key);
        var missing = await Assert.ThrowsAsync<InferenceException>(async () => await AuthorizeAsync(provider, null));
        await store.RevokeAsync(record.Id, default);
        var revoked = await Assert.ThrowsAsync<InferenceException>(async () => await AuthorizeAsync(provider, key));

        Assert.Same(Caller.Anonymous, anonymous); // no key anywhere yet: one open tenant (this host allows it)
        Assert.Equal(("acme", record.Id), (keyed.Tenant, keyed.KeyId));
        Assert.Equal(InferenceError.Unauthorized, missing.Error);
        Assert.Equal(InferenceError.Unauthorized, revoked.Error);
    }

    private static async Task<Caller> AuthorizeAsync(IServiceProvider services, string? key)
    {
        var context = new DefaultHttpContext { RequestServices = services };
        if (key is not null)
        {
            context.Request.Headers["api-key"] = key;
        }

        return await GatewayAuth.AuthorizeAsync(context);
    }
}
