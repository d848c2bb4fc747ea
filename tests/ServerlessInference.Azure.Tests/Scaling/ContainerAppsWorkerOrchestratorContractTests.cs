using System.Net;
using System.Text;
using System.Text.Json;
using Azure.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Azure.Scaling;
using ServerlessInference.Scaling;
using ServerlessInference.Testing.Contracts;
using ServerlessInference.Testing.Http;

namespace ServerlessInference.Azure.Tests.Scaling;

/// <summary>The orchestrator contract over a fake Azure Resource Manager that keeps one container app's scale block.</summary>
public sealed class ContainerAppsWorkerOrchestratorContractTests : WorkerOrchestratorContract
{
    private const string AppPath =
        "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-inference/providers/Microsoft.App/containerApps/si-worker";

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
    private readonly Lock _lock = new();
    private string _scale = """{"minReplicas":0,"maxReplicas":1,"rules":[]}""";
    private int _started;

    protected override TimeProvider Time => _time;

    protected override int WorkersStarted
    {
        get
        {
            lock (_lock)
            {
                return _started;
            }
        }
    }

    protected override ValueTask AdvanceAsync(TimeSpan duration)
    {
        _time.Advance(duration);
        return ValueTask.CompletedTask;
    }

    protected override ValueTask<IWorkerOrchestrator> CreateOrchestratorAsync()
    {
        var options = new ContainerAppsOrchestratorOptions
        {
            SubscriptionId = "00000000-1111-2222-3333-444444444444",
            ResourceGroup = "rg-inference",
            AppName = "si-worker",
        };
        var arm = new RecordingHttpHandler(_time).Otherwise(Answer);
        return ValueTask.FromResult<IWorkerOrchestrator>(Track(new ContainerAppsWorkerOrchestrator(
            options, new HourTokens(_time), arm, _time, NullLogger<ContainerAppsWorkerOrchestrator>.Instance)));
    }

    protected override ValueTask<int> PlatformReplicasAsync()
    {
        lock (_lock)
        {
            using var scale = JsonDocument.Parse(_scale);
            return ValueTask.FromResult(scale.RootElement.GetProperty("minReplicas").GetInt32());
        }
    }

    /// <summary>ARM's side: GET the app, merge-PATCH its scale block. A PATCH makes a new revision, whose replicas all
    /// start afresh. Broken, ARM refuses the write with a 403 (not retried, so no clock to move).</summary>
    private HttpResponseMessage Answer(RecordedRequest request)
    {
        Assert.Equal(AppPath, request.Uri.AbsolutePath);
        lock (_lock)
        {
            if (request.Method == HttpMethod.Patch)
            {
                if (PlatformBroken)
                {
                    return Json(HttpStatusCode.Forbidden, """{"error":{"code":"AuthorizationFailed","message":"no write on Microsoft.App/containerApps"}}""");
                }

                using var patch = JsonDocument.Parse(request.Body!);
                var scale = patch.RootElement.GetProperty("properties").GetProperty("template").GetProperty("scale");
                _scale = scale.GetRawText();
                _started += scale.GetProperty("minReplicas").GetInt32();
            }
            else
            {
                Assert.Equal(HttpMethod.Get, request.Method);
            }

            return Json(HttpStatusCode.OK, $$"""
                {
                  "id": "{{AppPath}}",
                  "name": "si-worker",
                  "type": "Microsoft.App/containerApps",
                  "properties": {
                    "provisioningState": "Succeeded",
                    "template": {
                      "containers": [{ "name": "worker", "image": "acr.example/serverless-inference-worker:1" }],
                      "scale": {{_scale}}
                    }
                  }
                }
                """);
        }
    }

    private static HttpResponseMessage Json(HttpStatusCode status, string body) =>
        new(status) { Content = new StringContent(body, Encoding.UTF8, "application/json") };

    private sealed class HourTokens(TimeProvider clock) : TokenCredential
    {
        public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            new("token", clock.GetUtcNow().AddHours(1));

        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            ValueTask.FromResult(GetToken(requestContext, cancellationToken));
    }
}
