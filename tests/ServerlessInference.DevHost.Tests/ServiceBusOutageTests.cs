using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using ServerlessInference.Azure.Jobs;
using ServerlessInference.Jobs;
using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.DevHost.Tests;

/// <summary>The DevHost on a Service Bus queue that cannot be reached: a closed loopback port, no retries.</summary>
[Collection(DevHostCollection.Name)]
public sealed class ServiceBusOutageTests(DevHostFixture fixture)
{
    [Fact]
    public async Task Infer_ServiceBusUnreachable_Answers503WithRetryAfter()
    {
        await using var host = new DevHostFactory(fixture.Root, new Dictionary<string, string?>
        {
            ["Inference:Queue:Provider"] = "ServiceBus",
            ["Inference:ServiceBus:ConnectionString"] = $"Endpoint=sb://127.0.0.1:{ClosedPort()};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;",
            ["Inference:ServiceBus:MaxRetries"] = "0",
            ["Inference:ServiceBus:TryTimeout"] = "00:00:02",
            ["Inference:ServiceBus:UnavailableRetryAfterSeconds"] = "7",
            ["Inference:DemoModels:Seed"] = "false",
            ["Inference:Scaling:ActivationThreshold"] = "1000",
        });
        using var client = host.CreateClient();
        Assert.IsType<ServiceBusJobQueue>(host.Services.GetRequiredService<IJobQueue>());
        var started = Stopwatch.GetTimestamp();

        var response = await new HttpClientGatewayDriver(client).SendAsync(
            GatewayRequest.Post("/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, 1)))));

        Assert.Equal((int)HttpStatusCode.ServiceUnavailable, response.Status);
        Assert.Equal("7", response.Header("Retry-After"));
        Assert.Contains("Service Bus cannot be reached", response.Error(), StringComparison.Ordinal);
        // A refused connection fails at once; only a hung one would wait out the 2 s try timeout.
        Assert.True(Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(30), "the outage was not reported promptly");
    }

    /// <summary>A loopback port nothing listens on: bound by the OS, then released.</summary>
    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
