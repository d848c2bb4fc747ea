using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.DevHost.Tests;

/// <summary>End-to-end cases that need the DevHost's fault injection (<see cref="PoisonEngine"/>); the cases every host
/// shares are in <see cref="GatewayBehaviourTests"/>.</summary>
[Collection(DevHostCollection.Name)]
public sealed class InferEndToEndTests(DevHostFixture fixture)
{
    [Fact]
    public async Task Infer_RequestTheEngineRejects_Answers400WithTheEnginesReasonAndOthersSucceed()
    {
        var x = Oip.Deterministic(512, seed: 6);
        x[0] = PoisonEngine.Rejected;
        var good = Oip.Deterministic(512, seed: 7);

        var rejected = fixture.ServingGateway.SendAsync(GatewayRequest.Post("/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], x))));
        var served = fixture.ServingGateway.SendAsync(GatewayRequest.Post("/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], good))));

        var response = await rejected;
        Assert.Equal(400, response.Status);
        Assert.Contains("injected rejection", response.Error());
        Assert.Equal(200, (await served).Status);
    }

    [Fact]
    public async Task Infer_PoisonJob_IsDeadLetteredWithTheReasonVisibleOnTheJob()
    {
        var x = Oip.Deterministic(512, seed: 5);
        x[0] = PoisonEngine.Poison;

        var accepted = await fixture.ServingGateway.SendAsync(GatewayRequest.Post(
            "/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], x)), ("Prefer", "respond-async")));
        var job = await GatewayBehaviourSuite.PollAsync(fixture.ServingGateway, accepted.Header("Location")!, "failed");

        var error = job.GetProperty("error").GetString()!;
        Assert.Contains("dead-lettered after 2 deliveries", error);
        Assert.Contains("injected engine fault", error);
    }
}
