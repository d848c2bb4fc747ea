using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Redis;
using ServerlessInference.Testing.Webhooks;
using ServerlessInference.Webhooks;
using StandardWebhooks;

namespace ServerlessInference.IntegrationTests;

/// <summary>Webhooks in the services profile: the outbox is in Redis, so a webhook the first gateway accepted (its job
/// run by a child-process worker) is delivered, signed, by a gateway started after the first one stopped.</summary>
[Collection(PlatformCollection.Name)]
[Trait("Category", "Integration")]
public sealed class WebhookServicesTests(PlatformFixture fixture)
{
    private static readonly string s_secret = "whsec_" + Convert.ToBase64String(Encoding.ASCII.GetBytes("integration-webhook-secret-32-by"));

    private static Dictionary<string, string?> WebhookSettings(string pollInterval) => new()
    {
        ["Inference:Webhooks:Secret"] = s_secret,
        ["Inference:Webhooks:AllowedNetworks:0"] = "127.0.0.0/8", // the receiver is on loopback, refused unless allowed
        ["Inference:Webhooks:PollInterval"] = pollInterval,
    };

    [Fact]
    public async Task Infer_GatewayRestartsBeforeDelivering_NextGatewayDeliversTheSignedResultFromRedis()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var delivered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        receiver.Hit += () => delivered.TrySetResult();
        string jobId;
        string keyPrefix;

        // The first gateway accepts the job and its webhook, but its dispatcher's first pass is an hour away: it stops
        // with the delivery still pending.
        await using (var first = new PlatformHost(fixture.Redis.ConnectionString, fixture.Azurite.ConnectionString, replicas: 1, WebhookSettings("01:00:00")))
        {
            await first.StartAsync(PlatformFixture.StartTimeout);
            Assert.IsType<RedisWebhookOutbox>(first.Services.GetRequiredService<IWebhookOutbox>());
            keyPrefix = first.KeyPrefix;
            using var client = first.CreateClient();
            using var post = Oip.Infer(MlpBenchModel.Name, Oip.MlpRequest(PlatformFixture.MlpInput(9), "hooked"), respondAsync: true);
            post.Headers.Add(WebhookRequests.Header, receiver.BaseUrl + "/hook?token=t1");
            using var accepted = await client.SendAsync(post);
            Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
            jobId = accepted.Headers.GetValues("X-Job-Id").Single();

            var done = await Jobs.WaitAllTerminalAsync(client, [jobId], TimeSpan.FromSeconds(60), () => first.Logs.Tail());
            Assert.Equal("succeeded", done[jobId].GetProperty("status").GetString());
            var pending = (await PlatformHost.GetStatusAsync(client)).GetProperty("webhooks");
            Assert.Equal(1, pending.GetProperty("pending").GetInt64());
        }

        Assert.Empty(receiver.Received);

        // A new gateway process on the same Redis (same key prefix), no workers: it finds the delivery and sends it.
        var secondSettings = WebhookSettings("00:00:00.200");
        secondSettings["Inference:Redis:KeyPrefix"] = keyPrefix;
        secondSettings["Inference:Scaling:MinReplicas"] = "0";
        secondSettings["Inference:Scaling:ActivationThreshold"] = "1000";
        await using var second = new PlatformHost(fixture.Redis.ConnectionString, fixture.Azurite.ConnectionString, replicas: 1, secondSettings);
        using var secondClient = second.CreateClient();
        await delivered.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var got = Assert.Single(receiver.Received);
        Assert.Equal("/hook", got.Path);
        Assert.Equal($"msg_{jobId}_succeeded", got.Headers["webhook-id"].ToString());
        Assert.Equal("application/json", got.Headers.ContentType.ToString());
        new StandardWebhook(s_secret).Verify(got.Body, got.Headers); // webhook-id, webhook-timestamp, webhook-signature
        using var json = JsonDocument.Parse(got.Body);
        Assert.Equal(jobId, json.RootElement.GetProperty("id").GetString());
        Assert.Equal("succeeded", json.RootElement.GetProperty("status").GetString());
        Oip.AssertClose(fixture.ExpectedMlp(9), Oip.JobResponse(json.RootElement).Outputs[0].AsSpan<float>());
    }
}
