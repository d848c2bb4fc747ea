using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Gateway;
using ServerlessInference.Generation;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Scaling;
using ServerlessInference.Security;
using ServerlessInference.Telemetry;
using ServerlessInference.Webhooks;
using ServerlessInference.Workers;

namespace ServerlessInference.Hosting;

/// <summary>Registration of what Core holds: the gateway, the worker runtime, the scaler, and the embedded providers.</summary>
/// <remarks>
/// <para>Core knows no provider names: which provider serves each contract is the host composition's choice
/// (<c>ServerlessInference.Hosting.InferencePlatform</c>), which calls one registration method per contract.</para>
/// <para>One rule for every provider method, here and in the provider projects: it registers unconditionally and
/// <em>replaces</em> whatever served that contract before, so the provider you call last is the one you get.
/// Shared infrastructure (the clock, options, metrics) is added only if absent.</para>
/// <para>Options bind from the host's configuration (<see cref="Microsoft.Extensions.Configuration.IConfiguration"/> in
/// the container) and are validated at start-up, so a bad setting stops the host with a message that names it.</para>
/// </remarks>
public static class InferenceServiceCollectionExtensions
{
    /// <summary>The gateway and what it needs apart from the providers: options, metrics, the model catalog, readiness.
    /// Needs an <see cref="IJobQueue"/>, an <see cref="IResultStore"/> and an <see cref="IModelStore"/>.</summary>
    public static IServiceCollection AddServerlessInference(this IServiceCollection services)
    {
        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<InferenceMetrics>();
        services.TryAddSingleton<Readiness>();

        services.AddValidatedOptions<GatewayOptions, GatewayOptionsValidator>(GatewayOptions.Section);
        services.AddValidatedOptions<JobQueueOptions, JobQueueOptionsValidator>(JobQueueOptions.Section);
        services.AddValidatedOptions<ResultStoreOptions, ResultStoreOptionsValidator>(ResultStoreOptions.Section);
        services.AddGatewayAuth();

        services.TryAddSingleton(sp => new ModelCatalog(
            sp.GetRequiredService<IModelStore>(), sp.GetRequiredService<TimeProvider>(), logger: sp.GetRequiredService<ILogger<ModelCatalog>>()));
        services.TryAddSingleton(sp => new InferenceGateway(
            sp.GetRequiredService<ModelCatalog>(),
            sp.GetRequiredService<IJobQueue>(),
            sp.GetRequiredService<IResultStore>(),
            sp.GetRequiredService<IOptions<GatewayOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<InferenceMetrics>(),
            sp.GetRequiredService<ILogger<InferenceGateway>>(),
            sp.GetService<IScaleTrigger>(),
            sp.GetService<Generation.IPromptTokenCounter>(),
            sp.GetRequiredService<JobSlots>(),
            sp.GetService<IWebhookOutbox>(),
            sp.GetService<IOptions<WebhookOptions>>()));
        services.AddWebhooks();
        return services;
    }

    /// <summary>Job webhooks (<see cref="WebhookOptions"/>, <c>Inference:Webhooks</c>): the outbox (in-process unless a
    /// provider registers another; Redis does), the target policy, the signed sender and the dispatcher. Gateway hosts
    /// add <see cref="WebhookDispatcherService"/> to run it.</summary>
    public static IServiceCollection AddWebhooks(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddValidatedOptions<WebhookOptions, WebhookOptionsValidator>(WebhookOptions.Section);
        services.TryAddSingleton<IWebhookOutbox, InMemoryWebhookOutbox>();
        services.TryAddSingleton(sp => new WebhookTargetPolicy(sp.GetRequiredService<IOptions<WebhookOptions>>().Value));
        services.TryAddSingleton(sp => new WebhookSender(sp.GetRequiredService<IOptions<WebhookOptions>>().Value, sp.GetRequiredService<WebhookTargetPolicy>()));
        services.TryAddSingleton<WebhookDispatcher>();
        return services;
    }

    /// <summary>Who may call the gateway: <see cref="AuthOptions"/> (<c>Inference:Auth</c>), keys from configuration unless
    /// a provider registers another <see cref="IApiKeyStore"/> (Redis replaces it), the per-key request-rate and
    /// concurrent-jobs limiters, and <see cref="AnonymousAccess"/> (allowed until a host decides otherwise).</summary>
    public static IServiceCollection AddGatewayAuth(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddValidatedOptions<AuthOptions, AuthOptionsValidator>(AuthOptions.Section);
        services.TryAddSingleton<IApiKeyStore, ConfigurationApiKeyStore>();
        services.TryAddSingleton<AnonymousAccess>();
        services.TryAddSingleton<RequestRateLimiter>();
        services.TryAddSingleton<JobSlots>();
        return services;
    }

    /// <summary>What a worker needs in its process: options, the weights cache, the warm pool and a factory of
    /// <see cref="InferenceWorker"/> loops. Needs an <see cref="IInferenceEngine"/>.</summary>
    public static IServiceCollection AddWorkerRuntime(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<InferenceMetrics>();
        services.AddValidatedOptions<WorkerOptions, WorkerOptionsValidator>(WorkerOptions.Section);
        services.AddValidatedOptions<WarmPoolOptions, WarmPoolOptionsValidator>(WarmPoolOptions.Section);
        services.TryAddSingleton(sp => new WeightsCache(
            sp.GetRequiredService<IModelStore>(),
            sp.GetRequiredService<IOptions<WarmPoolOptions>>().Value.CacheDirectory,
            sp.GetRequiredService<ILogger<WeightsCache>>()));
        services.TryAddSingleton<IDraftModelSource, StoreDraftModelSource>();
        services.TryAddSingleton<WarmPool>();
        services.TryAddSingleton<WorkerFactory>();
        return services;
    }

    /// <summary>The scaler and, with <see cref="ScalerTicks.Background"/> (the default, for hosts without a timer trigger),
    /// the background service that ticks it and wakes it when work arrives for zero workers (<see cref="IScaleTrigger"/>).
    /// With <see cref="ScalerTicks.External"/> only the <see cref="Scaler"/> is registered: the host calls
    /// <see cref="Scaler.TickAsync"/> itself (the Functions app's timer trigger), and a job that no worker can take runs
    /// one tick inline (<see cref="InlineScaleTrigger"/>) instead of waiting for the timer.
    /// Needs an <see cref="IWorkerOrchestrator"/>.</summary>
    public static IServiceCollection AddScaler(this IServiceCollection services, ScalerTicks ticks = ScalerTicks.Background)
    {
        services.AddValidatedOptions<ScalingOptions, ScalingOptionsValidator>(ScalingOptions.Section);
        services.TryAddSingleton<Scaler>();
        if (ticks == ScalerTicks.External)
        {
            services.TryAddSingleton<IScaleTrigger, InlineScaleTrigger>();
            return services;
        }

        if (services.Any(d => d.ServiceType == typeof(ScalerService)))
        {
            return services;
        }

        services.TryAddSingleton<ScalerService>();
        services.TryAddSingleton<IScaleTrigger>(sp => sp.GetRequiredService<ScalerService>());
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<ScalerService>());
        return services;
    }

    /// <summary>The <see cref="JobReconciler"/> and its background sweep (<see cref="JobReconcilerService"/>, options
    /// <c>Inference:Reconciler</c>), for gateway hosts whose queue and result store are shared services. The sweep does
    /// nothing unless both can be listed (<see cref="IJobQueueInventory"/>, <see cref="IUnfinishedJobScan"/>).</summary>
    public static IServiceCollection AddJobReconciler(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddValidatedOptions<JobReconcilerOptions, JobReconcilerOptionsValidator>(JobReconcilerOptions.Section);
        services.TryAddSingleton<JobReconciler>();
        if (!services.Any(d => d.ServiceType == typeof(JobReconcilerService)))
        {
            services.AddSingleton<JobReconcilerService>();
            services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<JobReconcilerService>());
        }

        return services;
    }

    /// <summary>Binds <typeparamref name="TOptions"/> to <paramref name="section"/> of the host's configuration and
    /// validates it at start-up with its source-generated <typeparamref name="TValidator"/>. Calling it again for the same
    /// type binds it once.</summary>
    public static OptionsBuilder<TOptions> AddValidatedOptions<TOptions, TValidator>(this IServiceCollection services, string section)
        where TOptions : class
        where TValidator : class, IValidateOptions<TOptions>
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TOptions>, TValidator>());
        var builder = services.AddOptions<TOptions>().ValidateOnStart();
        if (!services.Any(d => d.ServiceType == typeof(BoundSection<TOptions>)))
        {
            services.AddSingleton(new BoundSection<TOptions>(section));

            // Bound when the host has a configuration; a container built by hand (tests, benchmarks) gets the defaults.
            services.AddSingleton<IConfigureOptions<TOptions>>(sp => new ConfigureNamedOptions<TOptions>(
                Options.DefaultName, options => sp.GetService<IConfiguration>()?.GetSection(section).Bind(options)));
        }

        return builder;
    }
}

/// <summary>Marks an options type as bound to its section, so registering it twice binds it once.</summary>
internal sealed record BoundSection<TOptions>(string Section);

/// <summary>What drives the <see cref="Scaler"/>'s ticks in a host.</summary>
public enum ScalerTicks
{
    /// <summary>A background service (<see cref="ScalerService"/>) every <c>Inference:Scaling:TickInterval</c>, and at once
    /// when work arrives for zero workers.</summary>
    Background,

    /// <summary>The host calls <see cref="Scaler.TickAsync"/> itself (e.g. a timer-triggered function); no background service.</summary>
    External,
}
