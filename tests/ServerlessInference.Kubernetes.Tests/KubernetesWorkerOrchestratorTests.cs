using System.Net;
using k8s;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessInference.Testing.Http;

namespace ServerlessInference.Kubernetes.Tests;

public sealed class KubernetesWorkerOrchestratorTests : IDisposable
{
    private const string ScalePath = "/apis/apps/v1/namespaces/inference/deployments/serverless-inference-worker/scale";

    private readonly RecordingHttpHandler _apiServer = new();
    private readonly k8s.Kubernetes _client;
    private readonly KubernetesWorkerOrchestrator _orchestrator;

    public KubernetesWorkerOrchestratorTests()
    {
        _client = new k8s.Kubernetes(new KubernetesClientConfiguration { Host = "https://k8s.test:6443", AccessToken = "sa-token" }, _apiServer);
        _orchestrator = new KubernetesWorkerOrchestrator(_client, "inference", KubernetesOrchestratorOptions.DefaultDeployment, NullLogger<KubernetesWorkerOrchestrator>.Instance);
    }

    public void Dispose() => _client.Dispose();

    [Fact]
    public async Task GetReplicasAsync_Deployment_GetsTheScaleSubresourceAndReadsSpecReplicas()
    {
        // Three asked for, one ready: the count that matters to the scaler is the one the Deployment keeps.
        _apiServer.Respond(HttpStatusCode.OK, Scale(specReplicas: 3, statusReplicas: 1));

        var replicas = await _orchestrator.GetReplicasAsync(default);

        Assert.Equal(3, replicas);
        var get = Assert.Single(_apiServer.Requests);
        Assert.Equal(HttpMethod.Get, get.Method);
        Assert.Equal("https://k8s.test:6443" + ScalePath, get.Uri.GetLeftPart(UriPartial.Path));
        Assert.Equal("Bearer sa-token", get.Header("Authorization"));
        Assert.Null(get.Body);
    }

    [Fact]
    public async Task GetReplicasAsync_ScaledToZero_ReadsZero()
    {
        _apiServer.Respond(HttpStatusCode.OK, """{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"serverless-inference-worker"},"spec":{},"status":{"replicas":0}}""");

        Assert.Equal(0, await _orchestrator.GetReplicasAsync(default));
    }

    [Fact]
    public async Task SetReplicasAsync_Count_SendsAMergePatchOfSpecReplicasToTheScaleSubresource()
    {
        _apiServer.Respond(HttpStatusCode.OK, Scale(specReplicas: 4, statusReplicas: 2));

        await _orchestrator.SetReplicasAsync(4, default);

        var patch = Assert.Single(_apiServer.Requests);
        Assert.Equal(HttpMethod.Patch, patch.Method);
        Assert.Equal("https://k8s.test:6443" + ScalePath, patch.Uri.GetLeftPart(UriPartial.Path));
        Assert.Equal("application/merge-patch+json", patch.MediaType);
        Assert.Equal("""{"spec":{"replicas":4}}""", patch.Body);
        Assert.Equal("Bearer sa-token", patch.Header("Authorization"));
    }

    [Fact]
    public async Task SetReplicasAsync_Forbidden_ThrowsNamingTheRbacItNeeds()
    {
        _apiServer.Respond(HttpStatusCode.Forbidden, """
            {"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,
             "message":"deployments.apps \"serverless-inference-worker\" is forbidden: User \"system:serviceaccount:inference:gateway\" cannot patch resource \"deployments/scale\""}
            """);

        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => _orchestrator.SetReplicasAsync(2, default).AsTask());

        Assert.Equal(HttpStatusCode.Forbidden, ex.StatusCode);
        Assert.Contains("403", ex.Message);
        Assert.Contains("cannot patch resource", ex.Message);
        Assert.Contains("deployments/scale", ex.Message);
        Assert.Contains("infra/k8s/rbac.yaml", ex.Message);
    }

    [Fact]
    public async Task GetReplicasAsync_NoSuchDeployment_ThrowsNamingTheSettings()
    {
        _apiServer.Respond(HttpStatusCode.NotFound, """{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}""");

        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => _orchestrator.GetReplicasAsync(default).AsTask());

        Assert.Equal(HttpStatusCode.NotFound, ex.StatusCode);
        Assert.Contains("Inference:Orchestrator:Kubernetes:Deployment", ex.Message);
    }

    [Fact]
    public async Task GetReplicasAsync_ApiServerUnreachable_Throws()
    {
        _apiServer.Respond(_ => throw new HttpRequestException("Connection refused (k8s.test:6443)"));

        await Assert.ThrowsAsync<HttpRequestException>(() => _orchestrator.GetReplicasAsync(default).AsTask());
    }

    [Fact]
    public async Task SetReplicasAsync_PodDeletionCostOn_MarksThePreferredPodsLowestFirstThenScales()
    {
        using var orchestrator = new KubernetesWorkerOrchestrator(_client, "inference", KubernetesOrchestratorOptions.DefaultDeployment,
            NullLogger<KubernetesWorkerOrchestrator>.Instance) { PodDeletionCost = true };
        _apiServer.Respond(HttpStatusCode.OK, Pod("worker-abc12")).Respond(HttpStatusCode.OK, Pod("worker-def34")).Respond(HttpStatusCode.OK, Scale(1, 3));

        await orchestrator.SetReplicasAsync(1, ["worker-abc12", "worker-def34"], default);

        var requests = _apiServer.Requests;
        Assert.Equal(3, requests.Count);
        Assert.All(requests, r => Assert.Equal(HttpMethod.Patch, r.Method));
        Assert.Equal("/api/v1/namespaces/inference/pods/worker-abc12", requests[0].Uri.AbsolutePath);
        Assert.Equal("application/merge-patch+json", requests[0].MediaType);
        Assert.Equal("""{"metadata":{"annotations":{"controller.kubernetes.io/pod-deletion-cost":"-2"}}}""", requests[0].Body);
        Assert.Equal("/api/v1/namespaces/inference/pods/worker-def34", requests[1].Uri.AbsolutePath);
        Assert.Equal("""{"metadata":{"annotations":{"controller.kubernetes.io/pod-deletion-cost":"-1"}}}""", requests[1].Body);
        Assert.Equal(ScalePath, requests[2].Uri.AbsolutePath);
        Assert.Equal("""{"spec":{"replicas":1}}""", requests[2].Body);
    }

    [Fact]
    public async Task SetReplicasAsync_PodDeletionCostOff_IgnoresThePreference()
    {
        _apiServer.Respond(HttpStatusCode.OK, Scale(1, 3));

        await _orchestrator.SetReplicasAsync(1, ["worker-abc12"], default);

        var patch = Assert.Single(_apiServer.Requests);
        Assert.Equal(ScalePath, patch.Uri.AbsolutePath);
    }

    [Fact]
    public async Task SetReplicasAsync_APodCannotBeMarked_StillScales()
    {
        using var orchestrator = new KubernetesWorkerOrchestrator(_client, "inference", KubernetesOrchestratorOptions.DefaultDeployment,
            NullLogger<KubernetesWorkerOrchestrator>.Instance) { PodDeletionCost = true };
        _apiServer.Respond(HttpStatusCode.Forbidden, """{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}""")
            .Respond(HttpStatusCode.OK, Scale(1, 2));

        // The second id is no pod name (a worker outside the cluster): not even tried.
        await orchestrator.SetReplicasAsync(1, ["worker-abc12", "Not_A_Pod"], default);

        Assert.Equal(2, _apiServer.Requests.Count);
        Assert.Equal(ScalePath, _apiServer.Requests[1].Uri.AbsolutePath);
        Assert.Equal("""{"spec":{"replicas":1}}""", _apiServer.Requests[1].Body);
    }

    private static string Pod(string name) => $$$"""
        {"kind":"Pod","apiVersion":"v1","metadata":{"name":"{{{name}}}","namespace":"inference"}}
        """;

    private static string Scale(int specReplicas, int statusReplicas) => $$"""
        {"kind":"Scale","apiVersion":"autoscaling/v1",
         "metadata":{"name":"serverless-inference-worker","namespace":"inference"},
         "spec":{"replicas":{{specReplicas}}},
         "status":{"replicas":{{statusReplicas}},"selector":"app.kubernetes.io/name=serverless-inference-worker"}
        }
        """;
}
