using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using ServerlessInference.Embedded;
using ServerlessInference.Hosting;
using ServerlessInference.Hosting.Providers;
using ServerlessInference.Jobs;
using ServerlessInference.Scaling;
using ServerlessInference.Streaming;
using ServerlessInference.Testing.Contracts;
using ServerlessInference.Workers;
using StackExchange.Redis;

namespace ServerlessInference.Redis.Tests;

[Collection(RedisCollection.Name)]
public sealed class RedisServiceCollectionExtensionsTests(RedisFixture redis)
{
    private static IConfiguration Configuration(params (string Key, string Value)[] settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build();

    private static ServiceProvider Build(IConfiguration configuration)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(configuration);
        services.AddServerlessInference().AddProviders(ProviderChoice.Read(configuration));
        return services.BuildServiceProvider();
    }

    [Fact]
    public async Task AddRedisProviders_EveryProviderRedis_RegistersRedisImplementationsOnOneConnection()
    {
        await using var provider = Build(Configuration(
            ("Inference:Queue:Provider", "redis"),
            ("Inference:Results:Provider", "Redis"),
            ("Inference:Registry:Provider", "Redis"),
            ("Inference:Redis:ConnectionString", redis.Server.ConnectionString),
            ("Inference:Redis:KeyPrefix", $"t{Guid.NewGuid():N}:")));

        var queue = Assert.IsType<RedisJobQueue>(provider.GetRequiredService<IJobQueue>());
        Assert.IsType<RedisResultStore>(provider.GetRequiredService<IResultStore>());
        Assert.IsType<RedisJobStreams>(provider.GetRequiredService<IJobStreams>());
        Assert.IsType<RedisWorkerRegistry>(provider.GetRequiredService<IWorkerRegistry>());
        Assert.IsType<RedisScalingDecisionLog>(provider.GetRequiredService<IScalingDecisionLog>());
        Assert.Same(provider.GetRequiredService<RedisWorkerRegistry>(), provider.GetRequiredService<IWorkerRegistry>());
        Assert.Single(provider.GetServices<IConnectionMultiplexer>());

        var job = ContractJobs.Job(DateTimeOffset.UtcNow);
        await queue.EnqueueAsync(job, default);
        Assert.Equal(new QueueDepth(1, 0), await queue.GetDepthAsync(default));
    }

    [Fact]
    public async Task AddRedisProviders_OnlyTheQueueRedis_LeavesTheOthersEmbedded()
    {
        await using var provider = Build(Configuration(
            ("Inference:Queue:Provider", "Redis"),
            ("Inference:Redis:ConnectionString", redis.Server.ConnectionString)));

        Assert.IsType<RedisJobQueue>(provider.GetRequiredService<IJobQueue>());
        Assert.IsType<InMemoryResultStore>(provider.GetRequiredService<IResultStore>());
        Assert.IsType<InMemoryJobStreams>(provider.GetRequiredService<IJobStreams>());
        Assert.IsType<InMemoryWorkerRegistry>(provider.GetRequiredService<IWorkerRegistry>());
    }

    [Fact]
    public async Task AddRedisProviders_NoRedisProvider_RegistersNothing()
    {
        await using var provider = Build(Configuration());

        Assert.Null(provider.GetService<IConnectionMultiplexer>());
        Assert.IsType<InMemoryJobQueue>(provider.GetRequiredService<IJobQueue>());
    }

    [Fact]
    public async Task AddRedisProviders_NoConnectionString_FailsAtStartNamingTheSetting()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection([new("Inference:Results:Provider", "Redis")]);
        builder.Services.AddProviders(ProviderChoice.Read(builder.Configuration));
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("Inference:Redis:ConnectionString is required", ex.Message);
    }

    [Theory]
    [InlineData("127.0.0.1:6379,ssl=true", null, "Inference:Redis:EntraPrincipalId is required when Inference:Redis:Authentication is EntraId")]
    [InlineData("127.0.0.1:6379,password=secret", "00000000-0000-0000-0000-000000000001", "Inference:Redis:ConnectionString must hold no password or user when Inference:Redis:Authentication is EntraId")]
    public async Task AddRedisProviders_EntraIdMisconfigured_FailsAtStartNamingTheSetting(string connectionString, string? principalId, string expected)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection([
            new("Inference:Queue:Provider", "Redis"),
            new("Inference:Redis:ConnectionString", connectionString),
            new("Inference:Redis:Authentication", "entraid"),
            new("Inference:Redis:EntraPrincipalId", principalId)]);
        builder.Services.AddProviders(ProviderChoice.Read(builder.Configuration));
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void AddRedisProviders_EntraIdSettings_BindToTheOptions()
    {
        using var provider = Build(Configuration(
            ("Inference:Queue:Provider", "Redis"),
            ("Inference:Redis:ConnectionString", "contoso.eastus.redis.azure.net:10000,ssl=true"),
            ("Inference:Redis:Authentication", "EntraId"),
            ("Inference:Redis:EntraPrincipalId", "11111111-2222-3333-4444-555555555555"),
            ("Inference:Redis:ManagedIdentityClientId", "66666666-7777-8888-9999-000000000000")));

        var options = provider.GetRequiredService<IOptions<RedisOptions>>().Value;

        Assert.Equal(RedisAuthentication.EntraId, options.Authentication);
        Assert.Equal("11111111-2222-3333-4444-555555555555", options.EntraPrincipalId);
        Assert.Equal("66666666-7777-8888-9999-000000000000", options.ManagedIdentityClientId);
        Assert.Equal("11111111-2222-3333-4444-555555555555", provider.GetRequiredService<RedisEntraIdAuthentication>().User);
    }

    [Fact]
    public async Task AddRedisProviders_RedisDownAtStart_ResolvesAndAnswersUnavailable()
    {
        var started = Stopwatch.GetTimestamp();
        await using var provider = Build(Configuration(
            ("Inference:Queue:Provider", "Redis"),
            ("Inference:Redis:ConnectionString", "127.0.0.1:1,connectTimeout=1000"),
            ("Inference:Queue:RetryAfterSeconds", "1")));

        var queue = provider.GetRequiredService<IJobQueue>();
        Assert.True(Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(5), "resolving waited for Redis");

        var ex = await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(ContractJobs.Job(DateTimeOffset.UtcNow), default).AsTask());
        Assert.Equal(InferenceError.Unavailable, ex.Error);
        Assert.NotNull(ex.RetryAfterSeconds);
    }
}
