using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Embedded;
using ServerlessInference.Gateway;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Scaling;
using ServerlessInference.Telemetry;
using ServerlessInference.Workers;

namespace ServerlessInference.Hosting;

/// <summary>Settings of the model store (section <c>Inference:ModelStore</c>).</summary>
public sealed class ModelStoreOptions
{
    /// <summary><c>Folder</c>: <c>{Root}/{name}/{version}/model.onnx</c> + <c>manifest.json</c>.</summary>
    public string Provider { get; set; } = "Folder";

    public string Root { get; set; } = Path.Combine(DataRoot, "models");

    /// <summary>Where local state lives by default: <c>~/.local/share/serverless-inference</c> on Linux.</summary>
    public static string DataRoot => Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "serverless-inference");
}

/// <summary>Start-up wiring shared by every host: options validated at boot, providers chosen once by configuration.</summary>
public static class InferenceServiceCollectionExtensions
{
    /// <summary>Gateway, queue, results, registry and model store, with the providers the configuration names.</summary>
    public static IServiceCollection AddServerlessInference(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<InferenceMetrics>();
        services.TryAddSingleton<Readiness>();

        Bind<GatewayOptions>(services, "Inference:Gateway")
            .Validate(o => o.MaxBodyBytes is > 0 and <= int.MaxValue, "Inference:Gateway:MaxBodyBytes must be between 1 and 2147483647")
            .Validate(o => o.DefaultWait >= TimeSpan.Zero && o.DefaultWait <= o.MaxWait, "Inference:Gateway:DefaultWait must be between 0 and Inference:Gateway:MaxWait")
            .Validate(o => o.JobDeadline > TimeSpan.Zero, "Inference:Gateway:JobDeadline must be positive");
        Bind<JobQueueOptions>(services, "Inference:Queue")
            .Validate(o => o.Capacity > 0, "Inference:Queue:Capacity must be positive")
            .Validate(o => o.LeaseDuration > TimeSpan.Zero, "Inference:Queue:LeaseDuration must be positive")
            .Validate(o => o.MaxDeliveryCount >= 1, "Inference:Queue:MaxDeliveryCount must be at least 1");
        Bind<ResultStoreOptions>(services, "Inference:Results")
            .Validate(o => o.Ttl > TimeSpan.Zero, "Inference:Results:Ttl must be positive");
        Bind<ModelStoreOptions>(services, "Inference:ModelStore")
            .Validate(o => !string.IsNullOrWhiteSpace(o.Root), "Inference:ModelStore:Root must name a folder");

        // Each contract's provider is chosen once, here. Embedded ones are registered by this method; the others by
        // their provider project's extension (AddRedisProviders, AddBlobModelStore, ...), which the host also calls.
        if (Provider(configuration, ProviderSettings.Queue) == ProviderSettings.Embedded)
        {
            services.TryAddSingleton<IJobQueue, InMemoryJobQueue>();
        }

        if (Provider(configuration, ProviderSettings.Results) == ProviderSettings.Embedded)
        {
            services.TryAddSingleton<IResultStore, InMemoryResultStore>();
        }

        if (Provider(configuration, ProviderSettings.Registry) == ProviderSettings.Embedded)
        {
            services.TryAddSingleton<IWorkerRegistry>(sp => new InMemoryWorkerRegistry(sp.GetRequiredService<TimeProvider>()));
            services.TryAddSingleton<IScalingDecisionLog>(new InMemoryScalingDecisionLog());
        }

        if (Provider(configuration, ProviderSettings.ModelStore) == ProviderSettings.Folder)
        {
            services.TryAddSingleton<IModelStore>(sp => new FolderModelStore(sp.GetRequiredService<IOptions<ModelStoreOptions>>().Value.Root));
        }

        services.TryAddSingleton(sp => new ModelCatalog(sp.GetRequiredService<IModelStore>(), sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp => new InferenceGateway(
            sp.GetRequiredService<ModelCatalog>(),
            sp.GetRequiredService<IJobQueue>(),
            sp.GetRequiredService<IResultStore>(),
            sp.GetRequiredService<IOptions<GatewayOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<InferenceMetrics>(),
            sp.GetRequiredService<ILogger<InferenceGateway>>(),
            sp.GetService<IScaleTrigger>()));
        return services;
    }

    /// <summary>Workers as loops in this process, a warm pool shared by them, and the scaler (on a background timer
    /// unless <paramref name="ticks"/> says the host ticks it). Needs an <see cref="IInferenceEngine"/> (e.g. <c>AddOnnxEngine</c>).</summary>
    public static IServiceCollection AddInProcessWorkers(this IServiceCollection services, ScalerTicks ticks = ScalerTicks.Background)
    {
        services.AddWorkerRuntime();
        services.TryAddSingleton(sp => new InProcessWorkerOrchestrator(
            sp.GetRequiredService<WorkerFactory>().Create,
            sp.GetRequiredService<ILogger<InProcessWorkerOrchestrator>>()));
        services.TryAddSingleton<IWorkerOrchestrator>(sp => sp.GetRequiredService<InProcessWorkerOrchestrator>());
        return services.AddScaler(ticks);
    }

    /// <summary>What a worker needs in its process: options, the weights cache, the warm pool and a factory of
    /// <see cref="InferenceWorker"/> loops. Needs an <see cref="IInferenceEngine"/>.</summary>
    public static IServiceCollection AddWorkerRuntime(this IServiceCollection services)
    {
        Bind<WorkerOptions>(services, "Inference:Worker")
            .Validate(o => o.MaxBatchSize is >= 1 and <= 4096, "Inference:Worker:MaxBatchSize must be between 1 and 4096")
            .Validate(o => o.MaxBatchDelay >= TimeSpan.Zero, "Inference:Worker:MaxBatchDelay must not be negative")
            .Validate(o => o.PollInterval > TimeSpan.Zero, "Inference:Worker:PollInterval must be positive")
            .Validate(o => o.LeaseRenewInterval > TimeSpan.Zero, "Inference:Worker:LeaseRenewInterval must be positive");
        Bind<WarmPoolOptions>(services, "Inference:WarmPool")
            .Validate(o => o.BudgetBytes > 0, "Inference:WarmPool:BudgetBytes must be positive")
            .Validate(o => !string.IsNullOrWhiteSpace(o.CacheDirectory), "Inference:WarmPool:CacheDirectory must name a folder");
        services.TryAddSingleton(sp => new WeightsCache(
            sp.GetRequiredService<IModelStore>(),
            sp.GetRequiredService<IOptions<WarmPoolOptions>>().Value.CacheDirectory,
            sp.GetRequiredService<ILogger<WeightsCache>>()));
        services.TryAddSingleton<WarmPool>();
        services.TryAddSingleton<WorkerFactory>();
        return services;
    }

    /// <summary>The scaler and, with <see cref="ScalerTicks.Background"/> (the default, for hosts without a timer trigger),
    /// the background service that ticks it and wakes it when work arrives for zero workers (<see cref="IScaleTrigger"/>).
    /// With <see cref="ScalerTicks.External"/> only the <see cref="Scaler"/> is registered: the host calls
    /// <see cref="Scaler.TickAsync"/> itself (the Functions app's timer trigger) and no <see cref="IScaleTrigger"/> is
    /// registered, so the gateway nudges nothing and activation from zero waits for the next tick.
    /// Needs an <see cref="IWorkerOrchestrator"/>.</summary>
    public static IServiceCollection AddScaler(this IServiceCollection services, ScalerTicks ticks = ScalerTicks.Background)
    {
        Bind<ScalingOptions>(services, "Inference:Scaling")
            .Validate(o => o.MinReplicas >= 0 && o.MinReplicas <= o.MaxReplicas, "Inference:Scaling:MinReplicas must be between 0 and Inference:Scaling:MaxReplicas")
            .Validate(o => o.MaxReplicas >= 1, "Inference:Scaling:MaxReplicas must be at least 1")
            .Validate(o => o.TargetJobsPerWorker >= 1, "Inference:Scaling:TargetJobsPerWorker must be at least 1")
            .Validate(o => o.ActivationThreshold >= 1, "Inference:Scaling:ActivationThreshold must be at least 1")
            .Validate(o => o.TickInterval > TimeSpan.Zero, "Inference:Scaling:TickInterval must be positive");
        services.TryAddSingleton<Scaler>();
        if (ticks == ScalerTicks.External)
        {
            return services;
        }

        services.TryAddSingleton<ScalerService>();
        services.TryAddSingleton<IScaleTrigger>(sp => sp.GetRequiredService<ScalerService>());
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<ScalerService>());
        return services;
    }

    private static OptionsBuilder<T> Bind<T>(IServiceCollection services, string section) where T : class =>
        services.AddOptions<T>().BindConfiguration(section).ValidateOnStart();

    /// <summary>Throws naming the settings when a contract that workers in other processes share (queue, results,
    /// registry) is configured as in-process, where those workers would never see the jobs.</summary>
    /// <param name="why">Why workers run elsewhere here, e.g. "workers do not run inside the Functions app".</param>
    /// <param name="hint">Another way out, appended to the advice (e.g. ", or run with --profile services").</param>
    public static void RequireSharedProviders(IConfiguration configuration, string why, string hint = "")
    {
        var embedded = new[] { ProviderSettings.Queue, ProviderSettings.Results, ProviderSettings.Registry }
            .Where(s => Provider(configuration, s) == ProviderSettings.Embedded)
            .Select(s => s.Key)
            .ToList();
        if (embedded.Count > 0)
        {
            throw new InvalidOperationException(
                $"{string.Join(", ", embedded)} {(embedded.Count == 1 ? "is" : "are")} {ProviderSettings.Embedded}, but {why}: " +
                $"choose {ProviderSettings.Redis} (the queue may also be {ProviderSettings.ServiceBus}){hint} " +
                $"(app settings / environment: {string.Join(", ", embedded.Select(k => k.Replace(":", "__", StringComparison.Ordinal)))})");
        }
    }

    /// <summary>The configured provider of a contract, in its canonical spelling; throws naming the setting when unknown.</summary>
    public static string Provider(IConfiguration configuration, ProviderSetting setting)
    {
        var value = configuration[setting.Key];
        if (string.IsNullOrWhiteSpace(value))
        {
            return setting.Default;
        }

        return setting.Known.FirstOrDefault(k => string.Equals(k, value.Trim(), StringComparison.OrdinalIgnoreCase))
            ?? throw new InvalidOperationException($"{setting.Key} is '{value}'; known providers: {string.Join(", ", setting.Known)}");
    }
}

/// <summary>What drives the <see cref="Scaler"/>'s ticks in a host.</summary>
public enum ScalerTicks
{
    /// <summary>A background service (<see cref="ScalerService"/>) every <c>Inference:Scaling:TickInterval</c>, and at once
    /// when work arrives for zero workers.</summary>
    Background,

    /// <summary>The host calls <see cref="Scaler.TickAsync"/> itself (e.g. a timer-triggered function); no background service.</summary>
    External,
}

/// <summary>A setting that picks the provider of one contract.</summary>
public sealed record ProviderSetting(string Key, string Default, IReadOnlyList<string> Known);

/// <summary>The provider settings and the names they accept.</summary>
public static class ProviderSettings
{
    public const string Embedded = "Embedded";
    public const string Redis = "Redis";
    public const string ServiceBus = "ServiceBus";
    public const string Folder = "Folder";
    public const string Blob = "Blob";
    public const string InProcess = "InProcess";
    public const string ChildProcess = "ChildProcess";
    public const string ContainerApps = "ContainerApps";
    public const string Kubernetes = "Kubernetes";

    public static ProviderSetting Queue { get; } = new("Inference:Queue:Provider", Embedded, [Embedded, Redis, ServiceBus]);

    public static ProviderSetting Results { get; } = new("Inference:Results:Provider", Embedded, [Embedded, Redis]);

    /// <summary>Worker registry and scaling history.</summary>
    public static ProviderSetting Registry { get; } = new("Inference:Registry:Provider", Embedded, [Embedded, Redis]);

    public static ProviderSetting ModelStore { get; } = new("Inference:ModelStore:Provider", Folder, [Folder, Blob]);

    /// <summary>What starts and stops workers: loops in this process, child processes, an Azure Container App or a
    /// Kubernetes Deployment. The default here is <c>InProcess</c>; a host may put its own default in front
    /// (the DevHost's services profile: <c>ChildProcess</c>).</summary>
    public static ProviderSetting Orchestrator { get; } = new("Inference:Orchestrator:Provider", InProcess, [InProcess, ChildProcess, ContainerApps, Kubernetes]);

    /// <summary>Whether workers of this orchestrator run outside the host's process, so they can only reach a shared
    /// queue, result store and registry (not the embedded, in-memory ones).</summary>
    public static bool RunsWorkersOutOfProcess(string orchestrator) => orchestrator != InProcess;
}
