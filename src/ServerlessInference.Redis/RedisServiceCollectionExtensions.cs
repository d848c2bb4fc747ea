using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Embedded;
using ServerlessInference.Hosting;
using ServerlessInference.Jobs;
using ServerlessInference.Scaling;
using ServerlessInference.Workers;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

public static class RedisServiceCollectionExtensions
{
    /// <summary>Registers the Redis provider of each contract whose provider setting is <c>Redis</c>
    /// (<c>Inference:Queue:Provider</c>, <c>Inference:Results:Provider</c>, <c>Inference:Registry:Provider</c>), and the
    /// one connection they share. Does nothing when none is. Call it beside <c>AddServerlessInference</c>, in either
    /// order.</summary>
    /// <remarks>The connection is made when a provider is first resolved and does not fail when Redis is down
    /// (<c>abortConnect=false</c>): the host starts, calls fail fast with <see cref="InferenceError.Unavailable"/>
    /// (503 + Retry-After) meanwhile, and the connection heals by itself.</remarks>
    public static IServiceCollection AddRedisProviders(this IServiceCollection services, IConfiguration configuration)
    {
        var queue = InferenceServiceCollectionExtensions.Provider(configuration, ProviderSettings.Queue) == ProviderSettings.Redis;
        var results = InferenceServiceCollectionExtensions.Provider(configuration, ProviderSettings.Results) == ProviderSettings.Redis;
        var registry = InferenceServiceCollectionExtensions.Provider(configuration, ProviderSettings.Registry) == ProviderSettings.Redis;
        if (!queue && !results && !registry)
        {
            return services;
        }

        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<RedisOptions>()
            .BindConfiguration(RedisOptions.Section)
            .Validate(o => !string.IsNullOrWhiteSpace(o.ConnectionString),
                $"{RedisOptions.Section}:ConnectionString is required when a provider is Redis ({ProviderSettings.Queue.Key}, {ProviderSettings.Results.Key} or {ProviderSettings.Registry.Key})")
            .Validate(o => o.ConnectionString is null || IsParsable(o.ConnectionString),
                $"{RedisOptions.Section}:ConnectionString is not a valid StackExchange.Redis configuration string")
            .Validate(o => !string.IsNullOrEmpty(o.QueueName) && !string.IsNullOrEmpty(o.ConsumerGroup) && !string.IsNullOrEmpty(o.ConsumerName),
                $"{RedisOptions.Section}:QueueName, ConsumerGroup and ConsumerName must not be empty")
            .Validate(o => o.ReclaimInterval > TimeSpan.Zero, $"{RedisOptions.Section}:ReclaimInterval must be positive")
            .Validate(o => o.WorkerTtl > TimeSpan.Zero, $"{RedisOptions.Section}:WorkerTtl must be positive")
            .Validate(o => o.DeadLetterMaxLength > 0 && o.ScalingLogLength > 0, $"{RedisOptions.Section}:DeadLetterMaxLength and ScalingLogLength must be positive")
            .Validate(o => o.InlineRequestMaxBytes >= 0, $"{RedisOptions.Section}:InlineRequestMaxBytes must not be negative")
            .Validate(o => Enum.IsDefined(o.Authentication), $"{RedisOptions.Section}:Authentication must be Password or EntraId")
            .Validate(o => o.Authentication != RedisAuthentication.EntraId || !string.IsNullOrWhiteSpace(o.EntraPrincipalId),
                $"{RedisOptions.Section}:EntraPrincipalId is required when {RedisOptions.Section}:Authentication is EntraId (the object id of the identity, which is its Redis user name)")
            .Validate(o => o.Authentication != RedisAuthentication.EntraId || o.ConnectionString is null || !IsParsable(o.ConnectionString) || !HoldsCredentials(o.ConnectionString),
                $"{RedisOptions.Section}:ConnectionString must hold no password or user when {RedisOptions.Section}:Authentication is EntraId (only host:port,ssl=true)")
            .ValidateOnStart();

        services.TryAddSingleton(sp => RedisEntraIdAuthentication.Create(
            sp.GetRequiredService<IOptions<RedisOptions>>().Value,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<RedisEntraIdAuthentication>>()));
        services.TryAddSingleton<IConnectionMultiplexer>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<RedisOptions>>().Value;
            return Connect(options, options.Authentication == RedisAuthentication.EntraId ? sp.GetRequiredService<RedisEntraIdAuthentication>() : null);
        });
        if (queue)
        {
            services.TryAddSingleton(sp => new RedisJobQueue(
                sp.GetRequiredService<IConnectionMultiplexer>(),
                sp.GetRequiredService<IOptions<RedisOptions>>(),
                sp.GetRequiredService<IOptions<JobQueueOptions>>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetService<ILogger<RedisJobQueue>>()));
            services.TryAddSingleton<IJobQueue>(sp => sp.GetRequiredService<RedisJobQueue>());
        }

        if (results)
        {
            services.TryAddSingleton(sp => new RedisResultStore(
                sp.GetRequiredService<IConnectionMultiplexer>(),
                sp.GetRequiredService<IOptions<RedisOptions>>(),
                sp.GetRequiredService<IOptions<ResultStoreOptions>>(),
                sp.GetRequiredService<TimeProvider>()));
            services.TryAddSingleton<IResultStore>(sp => sp.GetRequiredService<RedisResultStore>());
        }

        if (registry)
        {
            services.TryAddSingleton(sp => new RedisWorkerRegistry(sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<IOptions<RedisOptions>>()));
            services.TryAddSingleton<IWorkerRegistry>(sp => sp.GetRequiredService<RedisWorkerRegistry>());
            services.TryAddSingleton<IScalingDecisionLog>(sp => new RedisScalingDecisionLog(sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<IOptions<RedisOptions>>()));
        }

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

    private static bool HoldsCredentials(string connectionString)
    {
        var configuration = ConfigurationOptions.Parse(connectionString);
        return !string.IsNullOrEmpty(configuration.Password) || !string.IsNullOrEmpty(configuration.User);
    }

    private static bool IsParsable(string connectionString)
    {
        try
        {
            ConfigurationOptions.Parse(connectionString);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
