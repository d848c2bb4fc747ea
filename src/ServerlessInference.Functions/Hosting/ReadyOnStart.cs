using Microsoft.Extensions.Hosting;
using ServerlessInference.Gateway;

namespace ServerlessInference.Functions.Hosting;

/// <summary>Marks the gateway ready once the host has started: options are validated by then, and
/// <c>/v2/health/ready</c> still asks the model store on every call. Nothing is seeded here; models are uploaded to the
/// store beforehand (the DevHost's services profile seeds the demo models into Azurite).</summary>
public sealed class ReadyOnStart(Readiness readiness) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        readiness.MarkReady();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        readiness.MarkNotReady("stopping");
        return Task.CompletedTask;
    }
}
