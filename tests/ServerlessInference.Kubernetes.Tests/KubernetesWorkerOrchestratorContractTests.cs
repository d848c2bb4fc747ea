using System.Net;
using System.Text;
using System.Text.Json;
using k8s;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Scaling;
using ServerlessInference.Testing.Contracts;
using ServerlessInference.Testing.Http;

namespace ServerlessInference.Kubernetes.Tests;

/// <summary>The orchestrator contract over a fake API server that keeps one Deployment's scale subresource.</summary>
public sealed class KubernetesWorkerOrchestratorContractTests : WorkerOrchestratorContract
{
    private const string ScalePath = "/apis/apps/v1/namespaces/inference/deployments/serverless-inference-worker/scale";

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
    private readonly Lock _lock = new();
    private int _specReplicas;
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
        var apiServer = new RecordingHttpHandler(_time).Otherwise(Answer);
        var client = new k8s.Kubernetes(new KubernetesClientConfiguration { Host = "https://k8s.test:6443", AccessToken = "sa-token" }, apiServer);
        return ValueTask.FromResult<IWorkerOrchestrator>(Track(new KubernetesWorkerOrchestrator(
            client, "inference", KubernetesOrchestratorOptions.DefaultDeployment, NullLogger<KubernetesWorkerOrchestrator>.Instance, ownsClient: true)));
    }

    protected override ValueTask<int> PlatformReplicasAsync()
    {
        lock (_lock)
        {
            return ValueTask.FromResult(_specReplicas);
        }
    }

    /// <summary>The API server's side: GET and merge-PATCH of the scale subresource; the Deployment starts a pod for
    /// every replica <c>spec.replicas</c> grows by.</summary>
    private HttpResponseMessage Answer(RecordedRequest request)
    {
        Assert.Equal(ScalePath, request.Uri.AbsolutePath);
        lock (_lock)
        {
            if (request.Method == HttpMethod.Patch)
            {
                if (PlatformBroken)
                {
                    return Json(HttpStatusCode.Forbidden, """{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}""");
                }

                Assert.Equal("application/merge-patch+json", request.MediaType);
                using var patch = JsonDocument.Parse(request.Body!);
                var replicas = patch.RootElement.GetProperty("spec").GetProperty("replicas").GetInt32();
                _started += Math.Max(0, replicas - _specReplicas);
                _specReplicas = replicas;
            }
            else
            {
                Assert.Equal(HttpMethod.Get, request.Method);
            }

            return Json(HttpStatusCode.OK, $$"""
                {"kind":"Scale","apiVersion":"autoscaling/v1",
                 "metadata":{"name":"serverless-inference-worker","namespace":"inference"},
                 "spec":{"replicas":{{_specReplicas}}},
                 "status":{"replicas":{{_specReplicas}}}
                }
                """);
        }
    }

    private static HttpResponseMessage Json(HttpStatusCode status, string body) =>
        new(status) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
}
