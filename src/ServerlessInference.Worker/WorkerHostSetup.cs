using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using ServerlessInference.Azure;
using ServerlessInference.Hosting;
using ServerlessInference.Onnx;
using ServerlessInference.Redis;
using ServerlessInference.Telemetry;

namespace ServerlessInference.Worker;

/// <summary>Settings of the worker process (section <c>Inference:WorkerHost</c>).</summary>
public sealed class WorkerHostOptions
{
    /// <summary>This worker's id in the registry; default <c>{host}-{pid}</c>. The child-process orchestrator sets it.</summary>
    public string? Id { get; set; }

    /// <summary>How long SIGTERM waits for the running batch to finish.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>When set, the worker drains and exits once this process is gone. The child-process orchestrator sets
    /// it to its own pid, so a gateway killed with SIGKILL (which cannot pass the signal on) leaves no orphan workers.</summary>
    public int? ParentProcessId { get; set; }

    /// <summary>How often the parent process is looked for.</summary>
    public TimeSpan ParentCheckInterval { get; set; } = TimeSpan.FromSeconds(1);

    public string ResolveId() => string.IsNullOrWhiteSpace(Id) ? $"{Environment.MachineName}-{Environment.ProcessId}" : Id;
}

/// <summary>The worker process's wiring: configured providers, the ONNX engine, one worker loop.</summary>
public static class WorkerHostSetup
{
    public const string DefaultUrl = "http://127.0.0.1:0";

    public static WebApplicationBuilder AddWorkerHost(this WebApplicationBuilder builder)
    {
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
        {
            // /metrics and /healthz on a port of the OS's choosing unless told otherwise (containers set ASPNETCORE_URLS).
            builder.WebHost.UseUrls(DefaultUrl);
        }

        builder.Services
            .AddServerlessInference(builder.Configuration)
            .AddRedisProviders(builder.Configuration)
            .AddServiceBusJobQueue(builder.Configuration)
            .AddBlobModelStore(builder.Configuration)
            .AddOnnxEngine(builder.Configuration)
            .AddWorkerRuntime();
        builder.Services.AddOptions<WorkerHostOptions>().BindConfiguration("Inference:WorkerHost")
            .Validate(o => o.DrainTimeout > TimeSpan.Zero, "Inference:WorkerHost:DrainTimeout must be positive")
            .Validate(o => o.ParentProcessId is null or > 0, "Inference:WorkerHost:ParentProcessId must be a process id")
            .Validate(o => o.ParentCheckInterval > TimeSpan.Zero, "Inference:WorkerHost:ParentCheckInterval must be positive")
            .ValidateOnStart();
        // Registered as itself too: /healthz reads it (AddHostedService alone hides it behind IHostedService).
        builder.Services.AddSingleton<WorkerService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<WorkerService>());
        builder.Services.AddHostedService<ParentWatch>();
        var drain = builder.Configuration.GetValue("Inference:WorkerHost:DrainTimeout", TimeSpan.FromSeconds(60));
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = drain + TimeSpan.FromSeconds(5));
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("serverless-inference-worker"))
            .WithMetrics(metrics => metrics.AddMeter(InferenceMetrics.MeterName).AddPrometheusExporter());
        return builder;
    }

    public static WebApplication MapWorkerEndpoints(this WebApplication app)
    {
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapGet("/healthz", (WorkerService worker) => Results.Json(new WorkerHealth(worker.Id, worker.ExecutionProvider, worker.ExecutionProviderDetail, worker.State), WorkerJsonContext.Default.WorkerHealth));
        return app;
    }
}
