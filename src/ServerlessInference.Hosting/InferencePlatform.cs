using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using ServerlessInference.Azure;
using ServerlessInference.Embedded;
using ServerlessInference.Hosting.Orchestration;
using ServerlessInference.Hosting.Providers;
using ServerlessInference.Kubernetes;
using ServerlessInference.Onnx;
using ServerlessInference.Onnx.Generation;
using ServerlessInference.Redis;

namespace ServerlessInference.Hosting;

/// <summary>The one composition of a host: reads <c>Inference:*:Provider</c> once, registers the chosen provider of every
/// contract, refuses combinations that cannot work, and adds the defaults every host shares.</summary>
public static class InferencePlatform
{
    /// <summary>Composes <paramref name="host"/>: its <see cref="InferenceHost.Defaults"/> under the other configuration
    /// sources, the providers the configuration names (<see cref="ProviderChoice"/>, registered as a singleton too), the
    /// gateway or worker runtime of its role, and <see cref="ServiceDefaults.AddServiceDefaults{TBuilder}"/>.</summary>
    /// <exception cref="InvalidOperationException">A provider setting names no known provider; the host cannot run the
    /// orchestrator named; or workers run in other processes while the queue, results or registry are in-memory. Every
    /// message names the settings.</exception>
    public static TBuilder AddInferencePlatform<TBuilder>(this TBuilder builder, InferenceHost host) where TBuilder : IHostApplicationBuilder
    {
        if (host.Defaults.Count > 0)
        {
            builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = host.Defaults });
        }

        var choice = ProviderChoice.Read(builder.Configuration);
        Check(choice, host);
        var services = builder.Services;
        services.AddSingleton(choice);
        services.AddServerlessInference();
        services.AddProviders(choice);
        if (host.Role == InferenceHostRole.Worker)
        {
            services.AddOnnxEngine().AddWorkerRuntime();
        }
        else
        {
            services.AddOrchestrator(choice.Orchestrator, host.ScalerTicks);
            services.AddPromptTokenCounter();
            services.AddHostedService<Webhooks.WebhookDispatcherService>();
            if (choice.Results == ProviderSettings.Redis)
            {
                services.AddRedisWebhookOutbox(); // deliveries outlive this gateway, and any gateway may send them
            }
            if (choice.Queue == ProviderSettings.Redis && choice.Results == ProviderSettings.Redis)
            {
                // Record and queue entry are two writes; a Redis restart can keep one without the other.
                services.AddJobReconciler();
            }
        }

        builder.AddServiceDefaults(host);
        return builder;
    }

    /// <summary>The provider of the queue, results (and with them the jobs' token streams and the API keys), registry and
    /// model store that <paramref name="choice"/> names.</summary>
    public static IServiceCollection AddProviders(this IServiceCollection services, ProviderChoice choice)
    {
        _ = choice.Queue switch
        {
            ProviderSettings.Redis => services.AddRedisJobQueue(),
            ProviderSettings.ServiceBus => services.AddServiceBusJobQueue(),
            _ => services.AddInMemoryJobQueue(),
        };
        _ = choice.Results == ProviderSettings.Redis ? services.AddRedisResultStore() : services.AddInMemoryResultStore();
        _ = choice.Results == ProviderSettings.Redis ? services.AddRedisJobStreams() : services.AddInMemoryJobStreams(); // token streams go where results go
        _ = choice.Registry == ProviderSettings.Redis ? services.AddRedisWorkerRegistry() : services.AddInMemoryWorkerRegistry();
        _ = choice.ModelStore == ProviderSettings.Blob ? services.AddBlobModelStore() : services.AddFolderModelStore();
        if (choice.Results == ProviderSettings.Redis)
        {
            services.AddRedisApiKeyStore(); // API keys live where the results live; else in configuration (Core's default)
        }

        return services;
    }

    /// <summary>The orchestrator <paramref name="orchestrator"/> names and the scaler that drives it. In-process workers
    /// bring the ONNX engine and their warm pool into this process.</summary>
    public static IServiceCollection AddOrchestrator(this IServiceCollection services, string orchestrator, ScalerTicks ticks = ScalerTicks.Background)
    {
        _ = orchestrator switch
        {
            ProviderSettings.InProcess => services.AddOnnxEngine().AddInProcessWorkers(ticks),
            ProviderSettings.ChildProcess => services.AddChildProcessOrchestrator(),
            ProviderSettings.ContainerApps => services.AddContainerAppsOrchestrator(),
            ProviderSettings.Kubernetes => services.AddKubernetesOrchestrator(),
            _ => throw new InvalidOperationException($"{ProviderSettings.Orchestrator.Key} is '{orchestrator}'; known providers: {string.Join(", ", ProviderSettings.Orchestrator.Known)}"),
        };
        return services.AddScaler(ticks);
    }

    /// <summary>The gateway's prompt-token counter (<see cref="OnnxPromptTokenCounter"/>): a prompt longer than its
    /// model's context is refused before it is queued. It keeps its own weights cache under
    /// <c>Inference:WarmPool:CacheDirectory</c>.</summary>
    public static IServiceCollection AddPromptTokenCounter(this IServiceCollection services)
    {
        services.AddValidatedOptions<Models.WarmPoolOptions, Models.WarmPoolOptionsValidator>(Models.WarmPoolOptions.Section);
        services.TryAddSingleton<Generation.IPromptTokenCounter, OnnxPromptTokenCounter>();
        return services;
    }

    private static void Check(ProviderChoice choice, InferenceHost host)
    {
        if (host.Role == InferenceHostRole.Gateway && !host.Orchestrators.Contains(choice.Orchestrator))
        {
            var key = ProviderSettings.Orchestrator;
            throw new InvalidOperationException(
                $"{key.Key} is {choice.Orchestrator}, but {host.WorkersNeverHere ?? $"{host.ServiceName} cannot run it"}: choose " +
                $"{string.Join(" or ", host.Orchestrators)} (app setting / environment: {key.EnvironmentKey})");
        }

        if (host.WorkersNeverHere is { } why)
        {
            choice.RequireSharedProviders(why);
        }
        else if (host.Role == InferenceHostRole.Gateway && choice.WorkersRunElsewhere)
        {
            choice.RequireSharedProviders(
                $"{ProviderSettings.Orchestrator.Key} is {choice.Orchestrator}, whose workers run in other processes and cannot reach this host's in-memory providers",
                host.SharedProvidersHint);
        }
    }
}
