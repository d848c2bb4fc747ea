using ServerlessInference.Hosting.Providers;

namespace ServerlessInference.Hosting;

/// <summary>What a host process is, as the composition needs to know it: its name, its role, the orchestrators it can
/// drive and the settings it assumes. Each host declares one (<c>DevHostSetup.Host</c>, <c>WorkerHostSetup.Host</c>,
/// <c>FunctionsHostSetup.Host</c>).</summary>
public sealed record InferenceHost
{
    /// <summary>The OpenTelemetry service name, e.g. <c>serverless-inference-devhost</c>; also how messages name the host.</summary>
    public required string ServiceName { get; init; }

    public required InferenceHostRole Role { get; init; }

    /// <summary>With <see cref="InferenceHostRole.Gateway"/>: the orchestrators this host can run; any other value of
    /// <c>Inference:Orchestrator:Provider</c> stops it at start, naming the setting.</summary>
    public IReadOnlyList<string> Orchestrators { get; init; } = ProviderSettings.Orchestrator.Known;

    /// <summary>When set, workers never run in this process (the Functions app): the queue, results and registry must be
    /// shared whatever the orchestrator, and this says why in the start-up error.</summary>
    public string? WorkersNeverHere { get; init; }

    /// <summary>Another way out, appended to the shared-providers advice (e.g. ", or run with --profile services").</summary>
    public string SharedProvidersHint { get; init; } = "";

    /// <summary>Who ticks the scaler in a gateway: a background service, or the host itself (a timer trigger).</summary>
    public ScalerTicks ScalerTicks { get; init; } = ScalerTicks.Background;

    /// <summary>Whether metrics are served as Prometheus text on <c>/metrics</c> (<c>MapInferenceMetrics</c>).</summary>
    public bool PrometheusEndpoint { get; init; } = true;

    /// <summary>Settings assumed unless configured: placed under every other configuration source.</summary>
    public IReadOnlyDictionary<string, string?> Defaults { get; init; } = new Dictionary<string, string?>();
}

/// <summary>What a host process runs.</summary>
public enum InferenceHostRole
{
    /// <summary>The gateway and the scaler, with the orchestrator that starts workers (which may be loops in this process).</summary>
    Gateway,

    /// <summary>One worker loop and its warm pool; no gateway routes, no scaler.</summary>
    Worker,
}
