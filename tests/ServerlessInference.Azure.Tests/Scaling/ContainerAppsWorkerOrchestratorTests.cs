using System.Net;
using Azure.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Azure.Scaling;
using ServerlessInference.Testing.Http;

namespace ServerlessInference.Azure.Tests.Scaling;

public sealed class ContainerAppsWorkerOrchestratorTests : IDisposable
{
    private const string AppUrl =
        "https://management.azure.com/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-inference" +
        "/providers/Microsoft.App/containerApps/si-worker?api-version=2025-07-01";

    private readonly SignallingTimeProvider _clock = new();
    private readonly RecordingHttpHandler _arm;
    private readonly FakeCredential _credential;
    private readonly ContainerAppsWorkerOrchestrator _orchestrator;

    public ContainerAppsWorkerOrchestratorTests()
    {
        _arm = new RecordingHttpHandler(_clock);
        _credential = new FakeCredential(_clock);
        _orchestrator = Create(new ContainerAppsOrchestratorOptions
        {
            SubscriptionId = "00000000-1111-2222-3333-444444444444",
            ResourceGroup = "rg-inference",
            AppName = "si-worker",
            MaxRetries = 2,
            RetryDelay = TimeSpan.FromSeconds(1),
            MaxRetryDelay = TimeSpan.FromSeconds(30),
        });
    }

    public void Dispose() => _orchestrator.Dispose();

    [Fact]
    public async Task GetReplicasAsync_App_GetsItWithABearerTokenAndReadsMinReplicas()
    {
        _arm.Respond(HttpStatusCode.OK, App(minReplicas: 3, maxReplicas: 3));

        var replicas = await _orchestrator.GetReplicasAsync(default);

        Assert.Equal(3, replicas);
        var get = Assert.Single(_arm.Requests);
        Assert.Equal(HttpMethod.Get, get.Method);
        Assert.Equal(AppUrl, get.Uri.AbsoluteUri);
        Assert.Equal("Bearer token-1", get.Header("Authorization"));
        Assert.Equal("application/json", get.Header("Accept"));
        Assert.Null(get.Body);
        Assert.Equal(["https://management.azure.com/.default"], _credential.Scopes);
    }

    [Fact]
    public async Task GetReplicasAsync_AppWithoutMinReplicas_ReadsZero()
    {
        _arm.Respond(HttpStatusCode.OK, """{"properties":{"template":{"containers":[],"scale":{"maxReplicas":10}}}}""");

        Assert.Equal(0, await _orchestrator.GetReplicasAsync(default));
    }

    [Fact]
    public async Task SetReplicasAsync_NewCount_PatchesOnlyTheScaleBlockAsAMergePatch()
    {
        _arm.Respond(HttpStatusCode.OK, App(minReplicas: 1, maxReplicas: 1)).Respond(HttpStatusCode.OK, App(minReplicas: 3, maxReplicas: 3));

        await _orchestrator.SetReplicasAsync(3, default);

        Assert.Equal(2, _arm.Requests.Count);
        var patch = _arm.Requests[1];
        Assert.Equal(HttpMethod.Patch, patch.Method);
        Assert.Equal(AppUrl, patch.Uri.AbsoluteUri);
        Assert.Equal("Bearer token-1", patch.Header("Authorization"));
        Assert.Equal("application/json", patch.MediaType);
        Assert.Equal("""{"properties":{"template":{"scale":{"minReplicas":3,"maxReplicas":3,"rules":[]}}}}""", patch.Body);
    }

    [Fact]
    public async Task SetReplicasAsync_Zero_KeepsMaxReplicasAtOneBecauseContainerAppsRejectsZero()
    {
        _arm.Respond(HttpStatusCode.OK, App(minReplicas: 2, maxReplicas: 2)).Respond(HttpStatusCode.Accepted, null, ("Location", "https://management.azure.com/op/1"));

        await _orchestrator.SetReplicasAsync(0, default);

        Assert.Equal("""{"properties":{"template":{"scale":{"minReplicas":0,"maxReplicas":1,"rules":[]}}}}""", _arm.Requests[1].Body);
    }

    [Fact]
    public async Task SetReplicasAsync_AlreadyKept_SendsNoPatch()
    {
        _arm.Respond(HttpStatusCode.OK, App(minReplicas: 2, maxReplicas: 2, rules: "[]"));

        await _orchestrator.SetReplicasAsync(2, default);

        Assert.Equal(HttpMethod.Get, Assert.Single(_arm.Requests).Method);
    }

    [Fact]
    public async Task SetReplicasAsync_AppHasAScaleRule_PatchesTheRuleAway()
    {
        // A rule (here HTTP concurrency) would start replicas the scaler did not ask for.
        _arm.Respond(HttpStatusCode.OK, App(minReplicas: 2, maxReplicas: 2, rules: """[{"name":"http","http":{"metadata":{"concurrentRequests":"10"}}}]"""))
            .Respond(HttpStatusCode.OK, App(minReplicas: 2, maxReplicas: 2));

        await _orchestrator.SetReplicasAsync(2, default);

        Assert.Equal("""{"properties":{"template":{"scale":{"minReplicas":2,"maxReplicas":2,"rules":[]}}}}""", _arm.Requests[1].Body);
    }

    [Fact]
    public async Task SetReplicasAsync_ThrottledThenAnswered_WaitsOutRetryAfterAndSucceeds()
    {
        _arm.Respond(HttpStatusCode.TooManyRequests, """{"error":{"code":"TooManyRequests","message":"slow down"}}""", ("Retry-After", "7"))
            .Respond(HttpStatusCode.OK, App(minReplicas: 0, maxReplicas: 1))
            .Respond(HttpStatusCode.OK, App(minReplicas: 1, maxReplicas: 1));

        var set = _orchestrator.SetReplicasAsync(1, default).AsTask();
        await _clock.WaitForTimerAsync();
        Assert.False(set.IsCompleted);
        _clock.Advance(TimeSpan.FromSeconds(7));
        await set.WaitAsync(TimeSpan.FromSeconds(30));

        var requests = _arm.Requests;
        Assert.Equal([HttpMethod.Get, HttpMethod.Get, HttpMethod.Patch], requests.Select(r => r.Method));
        Assert.Equal(TimeSpan.FromSeconds(7), requests[1].At - requests[0].At);
        Assert.Equal("""{"properties":{"template":{"scale":{"minReplicas":1,"maxReplicas":1,"rules":[]}}}}""", requests[2].Body);
    }

    [Fact]
    public async Task GetReplicasAsync_ServerErrorsUntilRetriesRunOut_ThrowsNamingStatusAndArmError()
    {
        const string error = """{"error":{"code":"InternalServerError","message":"try later"}}""";
        _arm.Respond(HttpStatusCode.InternalServerError, error)
            .Respond(HttpStatusCode.ServiceUnavailable, error)
            .Respond(HttpStatusCode.InternalServerError, error);

        var get = _orchestrator.GetReplicasAsync(default).AsTask();
        await _clock.WaitForTimerAsync();
        _clock.Advance(TimeSpan.FromSeconds(1));
        await _clock.WaitForTimerAsync();
        _clock.Advance(TimeSpan.FromSeconds(2));
        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => get.WaitAsync(TimeSpan.FromSeconds(30)));

        // MaxRetries = 2: three tries, backing off 1 s then 2 s.
        Assert.Equal(3, _arm.Requests.Count);
        Assert.Equal(HttpStatusCode.InternalServerError, ex.StatusCode);
        Assert.Contains("500", ex.Message);
        Assert.Contains("after 3 attempt(s)", ex.Message);
        Assert.Contains("InternalServerError: try later", ex.Message);
        Assert.Equal(TimeSpan.FromSeconds(3), _arm.Requests[2].At - _arm.Requests[0].At);
    }

    [Fact]
    public async Task GetReplicasAsync_NotFound_ThrowsAtOnceNamingTheSettings()
    {
        _arm.Respond(HttpStatusCode.NotFound, """{"error":{"code":"ResourceNotFound","message":"The Resource 'Microsoft.App/containerApps/si-worker' was not found."}}""");

        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => _orchestrator.GetReplicasAsync(default).AsTask());

        Assert.Single(_arm.Requests);
        Assert.Equal(HttpStatusCode.NotFound, ex.StatusCode);
        Assert.Contains("ResourceNotFound", ex.Message);
        Assert.Contains("Inference:Orchestrator:ContainerApps:SubscriptionId", ex.Message);
        Assert.DoesNotContain("token-", ex.Message);
    }

    [Fact]
    public async Task GetReplicasAsync_NetworkFailureThenAnswer_Retries()
    {
        _arm.Respond(_ => throw new HttpRequestException("connection reset"))
            .Respond(HttpStatusCode.OK, App(minReplicas: 1, maxReplicas: 1));

        var get = _orchestrator.GetReplicasAsync(default).AsTask();
        await _clock.WaitForTimerAsync();
        _clock.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal(1, await get.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(2, _arm.Requests.Count);
    }

    [Fact]
    public async Task GetReplicasAsync_RetryAfterLongerThanMaxRetryDelay_FailsAndHoldsLaterCallsUntilThen()
    {
        _arm.Respond(HttpStatusCode.TooManyRequests, null, ("Retry-After", "120"))
            .Respond(HttpStatusCode.OK, App(minReplicas: 2, maxReplicas: 2));

        var throttled = await Assert.ThrowsAsync<HttpRequestException>(() => _orchestrator.GetReplicasAsync(default).AsTask());
        _clock.Advance(TimeSpan.FromSeconds(60));
        var held = await Assert.ThrowsAsync<HttpRequestException>(() => _orchestrator.GetReplicasAsync(default).AsTask());

        // Waiting 120 s inside one scaler tick would stall it; the call fails and ARM is not called again before then.
        Assert.Equal(HttpStatusCode.TooManyRequests, throttled.StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, held.StatusCode);
        Assert.Single(_arm.Requests);

        _clock.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(2, await _orchestrator.GetReplicasAsync(default));
        Assert.Equal(2, _arm.Requests.Count);
    }

    [Fact]
    public async Task GetReplicasAsync_RepeatedCalls_ReuseTheTokenUntilNearExpiry()
    {
        for (var i = 0; i < 3; i++)
        {
            _arm.Respond(HttpStatusCode.OK, App(minReplicas: 1, maxReplicas: 1));
        }

        await _orchestrator.GetReplicasAsync(default);
        _clock.Advance(TimeSpan.FromMinutes(50)); // the token lives an hour: still ten minutes to go
        await _orchestrator.GetReplicasAsync(default);
        _clock.Advance(TimeSpan.FromMinutes(6)); // now within five minutes of expiry
        await _orchestrator.GetReplicasAsync(default);

        Assert.Equal(["Bearer token-1", "Bearer token-1", "Bearer token-2"], _arm.Requests.Select(r => r.Header("Authorization")));
    }

    [Fact]
    public async Task GetReplicasAsync_TokenRefused_FetchesANewTokenAndRetriesOnce()
    {
        _arm.Respond(HttpStatusCode.Unauthorized, """{"error":{"code":"ExpiredAuthenticationToken","message":"expired"}}""")
            .Respond(HttpStatusCode.OK, App(minReplicas: 4, maxReplicas: 4));

        Assert.Equal(4, await _orchestrator.GetReplicasAsync(default));
        Assert.Equal(["Bearer token-1", "Bearer token-2"], _arm.Requests.Select(r => r.Header("Authorization")));
    }

    [Fact]
    public void Constructor_SovereignEndpoint_BuildsUrlAndScopeFromIt()
    {
        using var orchestrator = Create(new ContainerAppsOrchestratorOptions
        {
            SubscriptionId = "00000000-1111-2222-3333-444444444444",
            ResourceGroup = "rg",
            AppName = "worker",
            ManagementEndpoint = "https://management.chinacloudapi.cn/",
        });

        Assert.Equal(
            "https://management.chinacloudapi.cn/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.App/containerApps/worker?api-version=2025-07-01",
            orchestrator.AppUri.AbsoluteUri);
    }

    private ContainerAppsWorkerOrchestrator Create(ContainerAppsOrchestratorOptions options) =>
        new(options, _credential, _arm, _clock, NullLogger<ContainerAppsWorkerOrchestrator>.Instance);

    private static string App(int minReplicas, int maxReplicas, string rules = "null") =>
        $$"""
        {
          "id": "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-inference/providers/Microsoft.App/containerApps/si-worker",
          "name": "si-worker",
          "type": "Microsoft.App/containerApps",
          "properties": {
            "provisioningState": "Succeeded",
            "latestRevisionName": "si-worker--abc123",
            "template": {
              "containers": [{ "name": "worker", "image": "acr.example/serverless-inference-worker:1" }],
              "scale": { "minReplicas": {{minReplicas}}, "maxReplicas": {{maxReplicas}}, "rules": {{rules}} }
            }
          }
        }
        """;

    /// <summary>Hands out <c>token-1</c>, <c>token-2</c>, ... each valid for an hour on the fake clock.</summary>
    private sealed class FakeCredential(TimeProvider clock) : TokenCredential
    {
        private int _issued;

        public List<string> Scopes { get; } = [];

        public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken)
        {
            Scopes.AddRange(requestContext.Scopes);
            return new AccessToken($"token-{Interlocked.Increment(ref _issued)}", clock.GetUtcNow().AddHours(1));
        }

        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            ValueTask.FromResult(GetToken(requestContext, cancellationToken));
    }
}

/// <summary>A fake clock that says when code under test starts waiting on it (a retry delay), so a test advances
/// time only once the wait exists.</summary>
internal sealed class SignallingTimeProvider() : FakeTimeProvider(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero))
{
    private readonly SemaphoreSlim _timers = new(0);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = base.CreateTimer(callback, state, dueTime, period);
        _timers.Release();
        return timer;
    }

    /// <summary>Waits until the next timer is created (a real-time bound only stops a hung test).</summary>
    public async Task WaitForTimerAsync() =>
        Assert.True(await _timers.WaitAsync(TimeSpan.FromSeconds(30)), "nothing started waiting on the clock");
}
