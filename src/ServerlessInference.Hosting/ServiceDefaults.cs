using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using ServerlessInference.Telemetry;

namespace ServerlessInference.Hosting;

/// <summary>What every host process gets, whatever its role: metrics through OpenTelemetry, log scopes that carry the
/// trace, its listening address when none is configured, and Kestrel's limits for slow clients and connections.</summary>
public static class ServiceDefaults
{
    /// <summary>The setting (or environment variable) that, when set, sends metrics and traces over OTLP, e.g. to an
    /// OpenTelemetry collector or Azure Monitor's OTLP ingestion. Read by the OpenTelemetry SDK itself, with the other
    /// <c>OTEL_*</c> settings (<c>OTEL_EXPORTER_OTLP_PROTOCOL</c>, ...), which child-process workers inherit.</summary>
    public const string OtlpEndpointSetting = "OTEL_EXPORTER_OTLP_ENDPOINT";

    /// <summary>OpenTelemetry metrics of the platform's meter (<see cref="InferenceMetrics.MeterName"/>) under the
    /// host's service name: Prometheus text when <see cref="InferenceHost.PrometheusEndpoint"/> (map it with
    /// <see cref="MapInferenceMetrics"/>), OTLP when <see cref="OtlpEndpointSetting"/> is set; and log scopes with the
    /// trace and span ids, so a log line can be found from a trace.</summary>
    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder, InferenceHost host) where TBuilder : IHostApplicationBuilder
    {
        builder.Logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);
        var telemetry = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(host.ServiceName))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(InferenceMetrics.MeterName);
                if (host.PrometheusEndpoint)
                {
                    metrics.AddPrometheusExporter();
                }
            });
        if (!string.IsNullOrWhiteSpace(builder.Configuration[OtlpEndpointSetting]))
        {
            // Traces only where they go somewhere: the platform's spans (InferenceTracing) under the request's. Jobs
            // carry the request's trace context either way (ASP.NET Core starts an activity per request).
            telemetry.WithTracing(tracing => tracing.AddSource(InferenceTracing.SourceName).AddAspNetCoreInstrumentation());
            telemetry.UseOtlpExporter();
        }

        return builder;
    }

    /// <summary>Prometheus text of the platform's metrics on <c>/metrics</c>.</summary>
    public static IEndpointRouteBuilder MapInferenceMetrics(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPrometheusScrapingEndpoint("/metrics");
        return endpoints;
    }

    /// <summary>Applies <see cref="KestrelLimits"/> (defaults plus <c>Kestrel:Limits</c>) to this host's Kestrel server.</summary>
    /// <exception cref="InvalidOperationException">A <c>Kestrel:Limits</c> value is invalid (the message names it).</exception>
    public static WebApplicationBuilder UseKestrelLimits(this WebApplicationBuilder builder)
    {
        var limits = KestrelLimits.Read(builder.Configuration);
        builder.Services.AddSingleton(limits);
        builder.Services.Configure<KestrelServerOptions>(options => limits.ApplyTo(options.Limits));
        return builder;
    }

    /// <summary>Listens on <paramref name="url"/> unless <c>urls</c> or <c>ASPNETCORE_URLS</c> says otherwise.</summary>
    public static WebApplicationBuilder UseDefaultUrl(this WebApplicationBuilder builder, string url)
    {
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
        {
            builder.WebHost.UseUrls(url);
        }

        return builder;
    }
}
