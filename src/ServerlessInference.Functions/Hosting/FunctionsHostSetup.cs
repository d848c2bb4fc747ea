using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ServerlessInference.Hosting;
using ServerlessInference.Hosting.Providers;

namespace ServerlessInference.Functions.Hosting;

/// <summary>The Functions app's wiring: the shared composition (<see cref="InferencePlatform"/>) with this host's
/// defaults, and readiness once the host has started.</summary>
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

    /// <summary>The Functions app as the composition sees it: a gateway whose workers never run here (so the queue,
    /// results and registry must be shared), driving a Container App or a Kubernetes Deployment, with the scaler ticked
    /// by the timer trigger (<see cref="Scaling.ScalerFunction"/>). Its metrics leave over OTLP when
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set; there is no <c>/metrics</c> route.</summary>
    public static InferenceHost Host { get; } = new()
    {
        ServiceName = "serverless-inference-functions",
        Role = InferenceHostRole.Gateway,
        Orchestrators = [ProviderSettings.ContainerApps, ProviderSettings.Kubernetes],
        WorkersNeverHere = "workers do not run inside the Functions app",
        ScalerTicks = ScalerTicks.External,
        PrometheusEndpoint = false,
        Defaults = Defaults,
    };

    /// <summary>Composes the Functions app.</summary>
    /// <exception cref="InvalidOperationException">The queue, results or registry provider is <c>Embedded</c>, or the
    /// orchestrator is one whose workers run in this process: the host must not start. The message names the setting.</exception>
    public static TBuilder AddFunctionsHost<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.AddInferencePlatform(Host);
        builder.Services.AddHostedService<ReadyOnStart>();
        return builder;
    }
}
