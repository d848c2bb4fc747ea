using Microsoft.Extensions.Options;
using ServerlessInference.Gateway;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.DevHost;

/// <summary>Puts the demo models into the model store before the host reports ready.</summary>
/// <remarks>Runs inside start-up, so the first request already finds them.</remarks>
public sealed partial class DemoModelSeeder(IModelStore store, IOptions<DemoModelOptions> options, Readiness readiness, ILogger<DemoModelSeeder> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Value.Seed)
        {
            await DemoModels.SeedAsync(store, cancellationToken).ConfigureAwait(false);
            var models = await store.ListAsync(cancellationToken).ConfigureAwait(false);
            Log.Seeded(logger, string.Join(", ", models.Select(m => m.Key)));
        }

        readiness.MarkReady();
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Model store holds: {Models}")]
        public static partial void Seeded(ILogger logger, string models);
    }
}
