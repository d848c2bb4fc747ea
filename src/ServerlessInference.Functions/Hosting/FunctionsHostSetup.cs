using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ServerlessInference.Azure;
using ServerlessInference.Hosting;
using ServerlessInference.Kubernetes;
using ServerlessInference.Scaling;

namespace ServerlessInference.Functions.Hosting;

/// <summary>The Functions app's wiring beyond the shared providers: its defaults, and the scaler ticked by the timer.</summary>
public static class FunctionsHostSetup
{
    /// <summary>What the Functions app assumes unless an app setting says otherwise: the queue, results and worker
    /// registry are shared with workers in other processes (Service Bus, Redis), weights come from Blob storage, and
    /// workers are a Container App. A sync wait is capped below the 230 s after which Azure's front end cuts an HTTP
    /// response, so a slow job becomes a 202 rather than a dropped connection.</summary>
    public static IReadOnlyDictionary<string, string?> Defaults { get; } = new Dictionary<string, string?>
    {
        [ProviderSettings.Queue.Key] = ProviderSettings.ServiceBus,
        [ProviderSettings.Results.Key] = ProviderSettings.Redis,
        [ProviderSettings.Registry.Key] = ProviderSettings.Redis,
        [ProviderSettings.ModelStore.Key] = ProviderSettings.Blob,
        [ProviderSettings.Orchestrator.Key] = ProviderSettings.ContainerApps,
        ["Inference:Gateway:MaxWait"] = "00:03:30",
    };

    /// <summary>Puts <see cref="Defaults"/> under every other configuration source (app settings, environment, command
    /// line still win) and refuses providers that cannot work here.</summary>
    /// <exception cref="InvalidOperationException">The queue, results or registry provider is <c>Embedded</c>: workers run in
    /// other processes and would never see the jobs, so the host must not start.</exception>
    public static TBuilder UseFunctionsDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = Defaults });
        InferenceServiceCollectionExtensions.RequireSharedProviders(builder.Configuration, "workers do not run inside the Functions app");
        return builder;
    }

    /// <summary>The orchestrator <c>Inference:Orchestrator:Provider</c> names: <c>ContainerApps</c> (the default) or
    /// <c>Kubernetes</c>. In-process and child-process workers cannot run inside a Functions app.</summary>
    /// <exception cref="InvalidOperationException">Any other provider; the message names the setting.</exception>
    public static IServiceCollection AddWorkerOrchestrator(this IServiceCollection services, IConfiguration configuration) =>
        InferenceServiceCollectionExtensions.Provider(configuration, ProviderSettings.Orchestrator) switch
        {
            ProviderSettings.ContainerApps => services.AddContainerAppsOrchestrator(configuration),
            ProviderSettings.Kubernetes => services.AddKubernetesOrchestrator(configuration),
            var other => throw new InvalidOperationException(
                $"{ProviderSettings.Orchestrator.Key} is {other}, but workers do not run inside the Functions app: choose " +
                $"{ProviderSettings.ContainerApps} or {ProviderSettings.Kubernetes} (app setting {ProviderSettings.Orchestrator.Key.Replace(":", "__", StringComparison.Ordinal)})"),
        };

    /// <summary>The scaler without a background timer (the <see cref="Scaling.ScalerFunction"/> ticks it) and readiness
    /// once the host has started. Needs an <see cref="IWorkerOrchestrator"/>.</summary>
    public static IServiceCollection AddGatewayFunctions(this IServiceCollection services)
    {
        services.AddScaler(ScalerTicks.External);
        services.AddHostedService<ReadyOnStart>();
        return services;
    }
}
