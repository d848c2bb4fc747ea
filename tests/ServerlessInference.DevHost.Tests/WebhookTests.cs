using System.Net;
using System.Text;
using System.Text.Json;
using ServerlessInference.Testing.Gateway;
using ServerlessInference.Testing.Webhooks;
using StandardWebhooks;

namespace ServerlessInference.DevHost.Tests;

/// <summary>Webhooks through the DevHost (embedded profile): an async job whose client never polls gets its signed
/// webhook from the host's dispatcher, and a bad webhook URL is refused before anything is queued.</summary>
[Collection(DevHostCollection.Name)]
public sealed class WebhookTests(DevHostFixture fixture) : IAsyncLifetime
{
    private static readonly string s_secret = "whsec_" + Convert.ToBase64String(Encoding.ASCII.GetBytes("devhost-webhook-tests-secret-32b"));
    private WebhookReceiver _receiver = null!;
    private DevHostFactory _host = null!;

    public async Task InitializeAsync()
    {
        _receiver = await WebhookReceiver.StartAsync();
        _host = new DevHostFactory(fixture.Root, new Dictionary<string, string?>(GatewayBehaviourSuite.ServingSettings)
        {
            ["Inference:Webhooks:Secret"] = s_secret,
            ["Inference:Webhooks:AllowedNetworks:0"] = "127.0.0.0/8",
            ["Inference:Webhooks:PollInterval"] = "00:00:00.100",
        });
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        await _receiver.DisposeAsync();
    }

    private static StringContent Body(string? webhook)
    {
        var data = string.Join(",", Oip.Deterministic(512, seed: 3).Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
        var parameters = webhook is null ? "" : $",\"parameters\":{{\"webhook\":{JsonSerializer.Serialize(webhook)}}}";
        return new StringContent($"{{\"inputs\":[{{\"name\":\"input\",\"shape\":[1,512],\"datatype\":\"FP32\",\"data\":[{data}]}}]{parameters}}}",
            Encoding.UTF8, "application/json");
    }

    [Fact]
    public async Task Infer_AsyncJobWithWebhook_ReceiverGetsTheSignedResultWithoutAnyPoll()
    {
        using var client = _host.CreateClient();
        var delivered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _receiver.Hit += () => delivered.TrySetResult();
        using var post = new HttpRequestMessage(HttpMethod.Post, "/v2/models/mlp-bench/infer") { Content = Body(_receiver.BaseUrl + "/done?job=1") };
        post.Headers.Add("Prefer", "respond-async");

        using var accepted = await client.SendAsync(post);
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var jobId = accepted.Headers.GetValues("X-Job-Id").Single();
        await delivered.Task.WaitAsync(TimeSpan.FromSeconds(60));

        var got = Assert.Single(_receiver.Received);
        new StandardWebhook(s_secret).Verify(got.Body, got.Headers);
        using var json = JsonDocument.Parse(got.Body);
        Assert.Equal(jobId, json.RootElement.GetProperty("id").GetString());
        Assert.Equal("succeeded", json.RootElement.GetProperty("status").GetString());
        Assert.Equal(16, json.RootElement.GetProperty("response").GetProperty("outputs")[0].GetProperty("data").GetArrayLength());

        // /status counts it (the count lands just after the receiver answered).
        var bound = System.Diagnostics.Stopwatch.StartNew();
        JsonElement webhooks;
        do
        {
            using var status = JsonDocument.Parse(await client.GetStringAsync("/status"));
            webhooks = status.RootElement.GetProperty("webhooks").Clone();
        }
        while (webhooks.GetProperty("delivered").GetInt64() == 0 && bound.Elapsed < TimeSpan.FromSeconds(10));

        Assert.Equal(1, webhooks.GetProperty("delivered").GetInt64());
        Assert.Equal(0, webhooks.GetProperty("pending").GetInt64());
    }

    [Theory]
    [InlineData("ftp://example.com/hook", "the webhook must be an absolute http or https URL")]
    [InlineData("https://user:secret@example.com/", "must not carry credentials")]
    public async Task Infer_BadWebhookInHeader_Answers400AndQueuesNothing(string url, string message)
    {
        using var client = _host.CreateClient();
        using var post = new HttpRequestMessage(HttpMethod.Post, "/v2/models/mlp-bench/infer") { Content = Body(null) };
        post.Headers.Add("Inference-Webhook", url);

        using var response = await client.SendAsync(post);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains(message, error.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.False(response.Headers.Contains("X-Job-Id"));
    }

    [Fact]
    public async Task Infer_WebhookOnAHostWithoutASecret_Answers400NamingTheSetting()
    {
        var response = await fixture.ServingGateway.SendAsync(GatewayRequest.Post("/v2/models/mlp-bench/infer",
            Oip.Raw(await Body("https://example.com/hook").ReadAsStringAsync())));

        Assert.Equal(400, response.Status);
        Assert.Contains("Inference:Webhooks:Secret is not set", response.Error());
    }
}
