using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Worker.Tests;

/// <summary>The worker host's Kestrel (/metrics, /healthz) gets the platform's limits and honours <c>Kestrel:Limits</c>.</summary>
public sealed class KestrelLimitsTests
{
    private static KestrelServerLimits Limits(Dictionary<string, string?> settings)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.AddWorkerHost();
        using var app = builder.Build();
        return app.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits;
    }

    [Fact]
    public void AddWorkerHost_NothingConfigured_SetsThePlatformDefaults()
    {
        var limits = Limits([]);

        Assert.Equal(2048, limits.MaxConcurrentConnections);
        Assert.Equal(TimeSpan.FromSeconds(10), limits.RequestHeadersTimeout);
        Assert.Equal(TimeSpan.FromSeconds(60), limits.KeepAliveTimeout);
        Assert.Equal(1024, limits.MinRequestBodyDataRate?.BytesPerSecond);
    }

    [Fact]
    public void AddWorkerHost_KestrelLimitsConfigured_ReachKestrelServerOptions()
    {
        var limits = Limits(new()
        {
            ["Kestrel:Limits:MaxConcurrentConnections"] = "8",
            ["Kestrel:Limits:RequestHeadersTimeout"] = "00:00:04",
            ["Kestrel:Limits:MinRequestBodyDataRate:BytesPerSecond"] = "0",
        });

        Assert.Equal(8, limits.MaxConcurrentConnections);
        Assert.Equal(TimeSpan.FromSeconds(4), limits.RequestHeadersTimeout);
        Assert.Null(limits.MinRequestBodyDataRate);
    }

    [Fact]
    public void AddWorkerHost_BadLimit_FailsNamingTheSetting()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Limits(new() { ["Kestrel:Limits:RequestHeadersTimeout"] = "soon" }));

        Assert.Contains("Kestrel:Limits:RequestHeadersTimeout", ex.Message);
    }
}
