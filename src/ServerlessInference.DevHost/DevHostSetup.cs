using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using ServerlessInference.Hosting;
using ServerlessInference.Onnx;
using ServerlessInference.Telemetry;

namespace ServerlessInference.DevHost;

/// <summary>The DevHost's wiring: the whole platform in one process on embedded providers.</summary>
public static class DevHostSetup
{
    public const string DefaultUrl = "http://127.0.0.1:7071";

    public static WebApplicationBuilder AddDevHost(this WebApplicationBuilder builder)
    {
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }

        builder.Services
            .AddServerlessInference(builder.Configuration)
            .AddOnnxEngine(builder.Configuration)
            .AddInProcessWorkers();
        builder.Services.AddOptions<DemoModelOptions>().BindConfiguration("Inference:DemoModels");
        builder.Services.AddHostedService<DemoModelSeeder>();
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("serverless-inference-devhost"))
            .WithMetrics(metrics => metrics
            .AddMeter(InferenceMetrics.MeterName)
            .AddPrometheusExporter());
        return builder;
    }
}
