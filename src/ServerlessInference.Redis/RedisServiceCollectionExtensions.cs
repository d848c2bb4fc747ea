using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Hosting;
using ServerlessInference.Jobs;
using ServerlessInference.Scaling;
using ServerlessInference.Streaming;
using ServerlessInference.Workers;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

/// <summary>Registration of the Redis providers. Each registers unconditionally and replaces the provider registered
/// before it for the same contract; they share one connection (<see cref="AddRedisConnection"/>).</summary>
/// <remarks>The connection is made when a provider is first resolved and does not fail when Redis is down
/// (<c>abortConnect=false</c>): the host starts, calls fail fast with <see cref="InferenceError.Unavailable"/>
/// (503 + Retry-After) meanwhile, and the connection heals by itself.</remarks>
public static class RedisServiceCollectionExtensions
{
    /// <summary>The one <see cref="IConnectionMultiplexer"/> the Redis providers share, with <see cref="RedisOptions"/>
    /// from <c>Inference:Redis</c> validated at start. Added once, however often it is called.</summary>
    public static IServiceCollection AddRedisConnection(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddValidatedOptions<RedisOptions, RedisOptionsValidator>(RedisOptions.Section);
        services.TryAddSingleton(sp => RedisEntraIdAuthentication.Create(
            sp.GetRequiredService<IOptions<RedisOptions>>().Value,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<RedisEntraIdAuthentication>>()));
        services.TryAddSingleton<IConnectionMultiplexer>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<RedisOptions>>().Value;
            return Connect(options, options.Authentication == RedisAuthentication.EntraId ? sp.GetRequiredService<RedisEntraIdAuthentication>() : null);
        });
        return services;
    }

    /// <summary><see cref="IJobQueue"/> → <see cref="RedisJobQueue"/> (a stream with a consumer group).</summary>
    public static IServiceCollection AddRedisJobQueue(this IServiceCollection services)
    {
        services.AddRedisConnection();
        services.AddValidatedOptions<JobQueueOptions, JobQueueOptionsValidator>(JobQueueOptions.Section);
        services.TryAddSingleton(sp => new RedisJobQueue(
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<RedisOptions>>(),
            sp.GetRequiredService<IOptions<JobQueueOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<RedisJobQueue>>()));
        services.Replace(ServiceDescriptor.Singleton<IJobQueue>(sp => sp.GetRequiredService<RedisJobQueue>()));
        return services;
    }

    /// <summary><see cref="IResultStore"/> → <see cref="RedisResultStore"/> (a hash per job, completions on pub/sub).</summary>
    public static IServiceCollection AddRedisResultStore(this IServiceCollection services)
    {
        services.AddRedisConnection();
        services.AddValidatedOptions<ResultStoreOptions, ResultStoreOptionsValidator>(ResultStoreOptions.Section);
        services.TryAddSingleton(sp => new RedisResultStore(
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<RedisOptions>>(),
            sp.GetRequiredService<IOptions<ResultStoreOptions>>(),
            sp.GetRequiredService<TimeProvider>()));
        services.Replace(ServiceDescriptor.Singleton<IResultStore>(sp => sp.GetRequiredService<RedisResultStore>()));
        return services;
    }

    /// <summary>The webhook outbox in Redis (<see cref="RedisWebhookOutbox"/>), replacing the in-process one: deliveries
    /// survive a gateway restart and any gateway sharing the Redis sends them.</summary>
    public static IServiceCollection AddRedisWebhookOutbox(this IServiceCollection services)
    {
        services.AddRedisConnection();
        services.TryAddSingleton(sp => new RedisWebhookOutbox(
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<RedisOptions>>()));
        services.Replace(ServiceDescriptor.Singleton<Webhooks.IWebhookOutbox>(sp => sp.GetRequiredService<RedisWebhookOutbox>()));
        return services;
    }

    /// <summary><see cref="Security.IApiKeyStore"/> → <see cref="RedisApiKeyStore"/> (one hash of key records).</summary>
    public static IServiceCollection AddRedisApiKeyStore(this IServiceCollection services)
    {
        services.AddRedisConnection();
        services.TryAddSingleton(sp => new RedisApiKeyStore(
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<RedisOptions>>()));
        services.Replace(ServiceDescriptor.Singleton<Security.IApiKeyStore>(sp => sp.GetRequiredService<RedisApiKeyStore>()));
        return services;
    }

    /// <summary><see cref="IJobStreams"/> → <see cref="RedisJobStreams"/> (a stream per job, appends announced on pub/sub;
    /// options from <c>Inference:Streams</c>).</summary>
    public static IServiceCollection AddRedisJobStreams(this IServiceCollection services)
    {
        services.AddRedisConnection();
        services.AddValidatedOptions<JobStreamOptions, JobStreamOptionsValidator>(JobStreamOptions.Section);
        services.TryAddSingleton(sp => new RedisJobStreams(
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<RedisOptions>>(),
            sp.GetRequiredService<IOptions<JobStreamOptions>>(),
            sp.GetRequiredService<TimeProvider>()));
        services.Replace(ServiceDescriptor.Singleton<IJobStreams>(sp => sp.GetRequiredService<RedisJobStreams>()));
        return services;
    }

    /// <summary><see cref="IWorkerRegistry"/> → <see cref="RedisWorkerRegistry"/> and <see cref="IScalingDecisionLog"/> →
    /// <see cref="RedisScalingDecisionLog"/> (and <see cref="IPlacementBoard"/> → <see cref="RedisPlacementBoard"/>): worker
    /// tracking, scaling history and the scaler's placement plan live together.</summary>
    public static IServiceCollection AddRedisWorkerRegistry(this IServiceCollection services)
    {
        services.AddRedisConnection();
        services.TryAddSingleton(sp => new RedisWorkerRegistry(sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<IOptions<RedisOptions>>()));
        services.Replace(ServiceDescriptor.Singleton<IWorkerRegistry>(sp => sp.GetRequiredService<RedisWorkerRegistry>()));
        services.Replace(ServiceDescriptor.Singleton<IScalingDecisionLog>(sp => new RedisScalingDecisionLog(sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<IOptions<RedisOptions>>())));
        services.Replace(ServiceDescriptor.Singleton<IPlacementBoard>(sp => new RedisPlacementBoard(sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<IOptions<RedisOptions>>())));
        return services;
    }

    /// <summary>The shared connection: never aborts when Redis is down at start, and fails commands at once while it is
    /// disconnected (no backlog), so callers can answer 503 instead of hanging.</summary>
    /// <param name="options">The connection string and settings.</param>
    /// <param name="entraId">With <see cref="RedisAuthentication.EntraId"/>: gets the first token now (it throws, naming the
    /// settings, when none can be got), then renews it and re-authenticates the connection until it is disposed.</param>
    public static IConnectionMultiplexer Connect(RedisOptions options, RedisEntraIdAuthentication? entraId = null)
    {
        var configuration = ConfigurationOptions.Parse(options.ConnectionString ?? throw new InvalidOperationException($"{RedisOptions.Section}:ConnectionString is required"));
        configuration.AbortOnConnectFail = false;
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        configuration.ClientName ??= "serverless-inference";
        entraId?.Configure(configuration);
        var multiplexer = ConnectionMultiplexer.Connect(configuration);
        entraId?.Start(multiplexer);
        return multiplexer;
    }
}
