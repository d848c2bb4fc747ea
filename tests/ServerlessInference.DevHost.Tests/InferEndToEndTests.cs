using System.Net;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.DevHost.Tests;

[Collection(DevHostCollection.Name)]
public sealed class InferEndToEndTests(DevHostFixture fixture)
{
    private const string ResNetInput = "Input247";

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Infer_ResNet18_EqualsADirectOnnxRuntimeRun(bool binary)
    {
        var input = Oip.Deterministic(3 * 224 * 224, seed: 7);
        using var session = new InferenceSession(ResNet18Model.FindFile());
        var expected = Oip.RunDirect(session, ResNetInput, [1, 3, 224, 224], input);
        var request = Oip.Request(ResNetInput, [1, 3, 224, 224], input, binaryOutput: binary);
        using var client = fixture.Host.CreateClient();

        using var response = await client.PostAsync("/v2/models/resnet18/infer", binary ? Oip.Binary(request) : Oip.Json(request));

        var result = await Oip.ReadResponseAsync(response);
        Assert.Equal(binary ? "application/octet-stream" : "application/json", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("resnet18", result.ModelName);
        Assert.Equal(request.Id, result.Id);
        var output = Assert.Single(result.Outputs);
        Assert.Equal([1L, 512, 1, 1], output.Shape);
        Assert.Equal(TensorDatatype.Fp32, output.Datatype);
        Oip.AssertClose(expected, output.AsSpan<float>());
    }

    [Fact]
    public async Task Infer_MlpBenchConcurrently_EachRequestGetsItsOwnOutput()
    {
        using var session = new InferenceSession(MlpBenchModel.Build());
        var inputs = Enumerable.Range(0, 48).Select(i => Oip.Deterministic(512, seed: 100 + i)).ToList();
        var expected = inputs.Select(x => Oip.RunDirect(session, "input", [1, 512], x)).ToList();
        using var client = fixture.Host.CreateClient();

        var responses = await Task.WhenAll(inputs.Select(async x =>
        {
            using var response = await client.PostAsync("/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], x)));
            return await Oip.ReadResponseAsync(response);
        }));

        for (var i = 0; i < inputs.Count; i++)
        {
            var output = Assert.Single(responses[i].Outputs);
            Assert.Equal([1L, 16], output.Shape);
            Oip.AssertClose(expected[i], output.AsSpan<float>());
        }
    }

    [Fact]
    public async Task Infer_RespondAsync_Answers202ThenThePollReturnsTheResult()
    {
        var x = Oip.Deterministic(512, seed: 3);
        using var session = new InferenceSession(MlpBenchModel.Build());
        var expected = Oip.RunDirect(session, "input", [1, 512], x);
        using var client = fixture.Host.CreateClient();
        using var post = new HttpRequestMessage(HttpMethod.Post, "/v2/models/mlp-bench/versions/1/infer") { Content = Oip.Json(Oip.Request("input", [1, 512], x)) };
        post.Headers.Add("Prefer", "respond-async");

        using var accepted = await client.SendAsync(post);

        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var location = accepted.Headers.Location!.ToString();
        Assert.StartsWith("/jobs/", location);
        Assert.Equal("respond-async", accepted.Headers.GetValues("Preference-Applied").Single());
        var job = await PollAsync(client, location, "succeeded");
        var response = job.GetProperty("response");
        Assert.Equal("mlp-bench", response.GetProperty("model_name").GetString());
        var data = response.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        Oip.AssertClose(expected, data);
    }

    [Fact]
    public async Task Infer_PoisonJob_IsDeadLetteredWithTheReasonVisibleOnTheJob()
    {
        var x = Oip.Deterministic(512, seed: 5);
        x[0] = PoisonEngine.Poison;
        using var client = fixture.Host.CreateClient();
        using var post = new HttpRequestMessage(HttpMethod.Post, "/v2/models/mlp-bench/infer") { Content = Oip.Json(Oip.Request("input", [1, 512], x)) };
        post.Headers.Add("Prefer", "respond-async");

        using var accepted = await client.SendAsync(post);
        var job = await PollAsync(client, accepted.Headers.Location!.ToString(), "failed");

        var error = job.GetProperty("error").GetString()!;
        Assert.Contains("dead-lettered after 2 deliveries", error);
        Assert.Contains("injected engine fault", error);
    }

    [Fact]
    public async Task Infer_SyncWaitTimesOut_Answers202WithLocation()
    {
        // Prefer: wait=0 never waits, so the answer is always 202 even though a worker is warm.
        using var client = fixture.Host.CreateClient();
        using var post = new HttpRequestMessage(HttpMethod.Post, "/v2/models/mlp-bench/infer") { Content = Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, 9))) };
        post.Headers.Add("Prefer", "wait=0");

        using var response = await client.SendAsync(post);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.NotNull(response.Headers.Location);
        await PollAsync(client, response.Headers.Location!.ToString(), "succeeded");
    }

    [Theory]
    [InlineData("/v2/models/nope/infer", HttpStatusCode.NotFound, "unknown model 'nope'")]
    [InlineData("/v2/models/mlp-bench/versions/9/infer", HttpStatusCode.NotFound, "has no version '9'")]
    public async Task Infer_UnknownModelOrVersion_Answers404(string path, HttpStatusCode status, string message)
    {
        using var client = fixture.Host.CreateClient();

        using var response = await client.PostAsync(path, Oip.Json(Oip.Request("input", [1, 512], new float[512])));

        Assert.Equal(status, response.StatusCode);
        Assert.Contains(message, await Oip.ReadErrorAsync(response));
    }

    [Theory]
    [InlineData("{not json", "invalid JSON")]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,512],"datatype":"FP32","data":[1,2,3]}]}""", "input")]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}""", "input")]
    [InlineData("""{"inputs":[{"name":"wrong","shape":[1,512],"datatype":"FP32","data":[]}]}""", "wrong")]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,2],"datatype":"INT64","data":[1,2]}]}""", "INT64")]
    public async Task Infer_BadBody_Answers400WithAClearErrorAndEnqueuesNothing(string body, string mentions)
    {
        using var client = fixture.Host.CreateClient();

        using var response = await client.PostAsync("/v2/models/mlp-bench/infer", Oip.Raw(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(mentions, await Oip.ReadErrorAsync(response));
        Assert.False(response.Headers.Contains("X-Job-Id"));
    }

    [Fact]
    public async Task Infer_BodyOverTheLimit_Answers413()
    {
        using var client = fixture.Stalled.CreateClient();
        var body = new ByteArrayContent(new byte[(1 << 20) + 1]);

        using var response = await client.PostAsync("/v2/models/mlp-bench/infer", body);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("Inference:Gateway:MaxBodyBytes", await Oip.ReadErrorAsync(response));
    }

    [Fact]
    public async Task Infer_QueueFull_Answers429WithRetryAfter_AndCancelWorksOnlyBeforeStart()
    {
        using var client = fixture.Stalled.CreateClient();
        var locations = new List<string>();
        HttpResponseMessage? refused = null;
        for (var i = 0; i < 3 && refused is null; i++)
        {
            using var post = new HttpRequestMessage(HttpMethod.Post, "/v2/models/mlp-bench/infer") { Content = Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, i))) };
            post.Headers.Add("Prefer", "respond-async");
            var response = await client.SendAsync(post);
            if (response.StatusCode == HttpStatusCode.Accepted)
            {
                locations.Add(response.Headers.Location!.ToString());
                response.Dispose();
            }
            else
            {
                refused = response;
            }
        }

        Assert.NotNull(refused);
        Assert.Equal((HttpStatusCode)429, refused.StatusCode);
        Assert.Equal("3", refused.Headers.GetValues("Retry-After").Single());
        Assert.Contains("full", await Oip.ReadErrorAsync(refused));
        refused.Dispose();

        // Queued jobs (no worker runs here) can be cancelled once; the poll then says cancelled.
        foreach (var location in locations)
        {
            using var cancel = await client.DeleteAsync(location);
            Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
            Assert.Equal("cancelled", (await Oip.ReadJsonAsync(cancel)).GetProperty("status").GetString());
            using var again = await client.DeleteAsync(location);
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
            Assert.Contains("can no longer be cancelled", await Oip.ReadErrorAsync(again));
            using var poll = await client.GetAsync(location);
            Assert.Equal("cancelled", (await Oip.ReadJsonAsync(poll)).GetProperty("status").GetString());
        }
    }

    [Fact]
    public async Task Jobs_UnknownId_Answers404()
    {
        using var client = fixture.Host.CreateClient();

        using var get = await client.GetAsync("/jobs/does-not-exist");
        using var delete = await client.DeleteAsync("/jobs/does-not-exist");

        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, delete.StatusCode);
        Assert.Contains("unknown job", await Oip.ReadErrorAsync(get));
    }

    internal static async Task<System.Text.Json.JsonElement> PollAsync(HttpClient client, string location, string until)
    {
        var giveUp = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            using var poll = await client.GetAsync(location);
            Assert.Equal(HttpStatusCode.OK, poll.StatusCode);
            var job = await Oip.ReadJsonAsync(poll);
            var status = job.GetProperty("status").GetString();
            if (status == until)
            {
                return job;
            }

            Assert.True(status is "queued" or "running", $"job ended as {status}: {job}");
            Assert.True(DateTime.UtcNow < giveUp, $"job still {status} after 60 s");
            await Task.Delay(20);
        }
    }
}
