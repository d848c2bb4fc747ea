using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Onnx;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.Testing.Gateway;

/// <summary>What every host's gateway must do over its routes (docs/architecture.md, "HTTP surface"), end to end with real inference on the
/// demo models. Derive once per host (DevHost over HTTP, the Functions app through its function classes).</summary>
/// <remarks>A derived class provides two hosts over one model store holding the demo models: <see cref="Serving"/>
/// configured with <see cref="ServingSettings"/> (at least one worker running), and <see cref="Stalled"/> configured with
/// <see cref="StalledSettings"/> (no worker ever starts, so jobs stay queued).</remarks>
public abstract class GatewayBehaviourSuite
{
    private const string ResNetInput = "Input247";

    /// <summary>Settings of the serving host: one or two workers, and poison jobs dead-lettered after two deliveries.</summary>
    public static IReadOnlyDictionary<string, string?> ServingSettings { get; } = new Dictionary<string, string?>
    {
        ["Inference:Queue:MaxDeliveryCount"] = "2",
        ["Inference:Scaling:MinReplicas"] = "1",
        ["Inference:Scaling:MaxReplicas"] = "2",
    };

    /// <summary>Settings of the stalled host: a queue of two, <c>Retry-After: 3</c>, a 1 MiB body limit, and an
    /// activation threshold no test reaches.</summary>
    public static IReadOnlyDictionary<string, string?> StalledSettings { get; } = new Dictionary<string, string?>
    {
        ["Inference:Queue:Capacity"] = "2",
        ["Inference:Queue:RetryAfterSeconds"] = "3",
        ["Inference:Scaling:ActivationThreshold"] = "1000",
        ["Inference:Gateway:MaxBodyBytes"] = "1048576",
    };

    /// <summary>The host configured with <see cref="ServingSettings"/>.</summary>
    protected abstract IGatewayDriver Serving { get; }

    /// <summary>The host configured with <see cref="StalledSettings"/>.</summary>
    protected abstract IGatewayDriver Stalled { get; }

    /// <summary>A host configured with <see cref="TestKeys.Settings"/>: keys required, no worker ever starts.</summary>
    protected abstract IGatewayDriver Keyed { get; }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Infer_ResNet18_EqualsADirectOnnxRuntimeRun(bool binary)
    {
        var input = Oip.Deterministic(3 * 224 * 224, seed: 7);
        using var session = new InferenceSession(ResNet18Model.FindFile());
        var expected = Oip.RunDirect(session, ResNetInput, [1, 3, 224, 224], input);
        var request = Oip.Request(ResNetInput, [1, 3, 224, 224], input, binaryOutput: binary);

        var response = await Serving.SendAsync(GatewayRequest.Post("/v2/models/resnet18/infer", binary ? Oip.Binary(request) : Oip.Json(request)));

        var result = Oip.ReadResponse(response);
        Assert.Equal(binary ? "application/octet-stream" : "application/json", response.MediaType);
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

        var responses = await Task.WhenAll(inputs.Select(async x =>
            Oip.ReadResponse(await Serving.SendAsync(GatewayRequest.Post("/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], x)))))));

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

        var accepted = await Serving.SendAsync(GatewayRequest.Post(
            "/v2/models/mlp-bench/versions/1/infer", Oip.Json(Oip.Request("input", [1, 512], x)), ("Prefer", "respond-async")));

        Assert.Equal(202, accepted.Status);
        var location = accepted.Header("Location")!;
        Assert.StartsWith("/jobs/", location);
        Assert.Equal("respond-async", accepted.Header("Preference-Applied"));
        var job = await PollAsync(Serving, location, "succeeded");
        var response = job.GetProperty("response");
        Assert.Equal("mlp-bench", response.GetProperty("model_name").GetString());
        var data = response.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        Oip.AssertClose(expected, data);
    }

    [Fact]
    public async Task Infer_SyncWaitTimesOut_Answers202WithLocation()
    {
        // Prefer: wait=0 never waits, so the answer is always 202 even though a worker is warm.
        var response = await Serving.SendAsync(GatewayRequest.Post(
            "/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, 9))), ("Prefer", "wait=0")));

        Assert.Equal(202, response.Status);
        Assert.NotNull(response.Header("Location"));
        await PollAsync(Serving, response.Header("Location")!, "succeeded");
    }

    [Theory]
    [InlineData("/v2/models/nope/infer", 404, "unknown model 'nope'")]
    [InlineData("/v2/models/mlp-bench/versions/9/infer", 404, "has no version '9'")]
    public async Task Infer_UnknownModelOrVersion_Answers404(string path, int status, string message)
    {
        var response = await Serving.SendAsync(GatewayRequest.Post(path, Oip.Json(Oip.Request("input", [1, 512], new float[512]))));

        Assert.Equal(status, response.Status);
        Assert.Contains(message, response.Error());
    }

    [Theory]
    [InlineData("{not json", "invalid JSON")]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,512],"datatype":"FP32","data":[1,2,3]}]}""", "input")]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}""", "input")]
    [InlineData("""{"inputs":[{"name":"wrong","shape":[1,512],"datatype":"FP32","data":[]}]}""", "wrong")]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,2],"datatype":"INT64","data":[1,2]}]}""", "INT64")]
    public async Task Infer_BadBody_Answers400WithAClearErrorAndEnqueuesNothing(string body, string mentions)
    {
        var response = await Serving.SendAsync(GatewayRequest.Post("/v2/models/mlp-bench/infer", Oip.Raw(body)));

        Assert.Equal(400, response.Status);
        Assert.Contains(mentions, response.Error());
        Assert.Null(response.Header("X-Job-Id"));
    }

    [Fact]
    public async Task Infer_BodyOverTheLimit_Answers413()
    {
        var response = await Stalled.SendAsync(GatewayRequest.Post("/v2/models/mlp-bench/infer", new GatewayContent(new byte[(1 << 20) + 1], null)));

        Assert.Equal(413, response.Status);
        Assert.Contains("Inference:Gateway:MaxBodyBytes", response.Error());
    }

    [Fact]
    public async Task Infer_QueueFull_Answers429WithRetryAfter_AndCancelWorksOnlyBeforeStart()
    {
        var locations = new List<string>();
        GatewayResponse? refused = null;
        for (var i = 0; i < 3 && refused is null; i++)
        {
            var response = await Stalled.SendAsync(GatewayRequest.Post(
                "/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, i))), ("Prefer", "respond-async")));
            if (response.Status == 202)
            {
                locations.Add(response.Header("Location")!);
            }
            else
            {
                refused = response;
            }
        }

        Assert.NotNull(refused);
        Assert.Equal(429, refused.Status);
        Assert.Equal("3", refused.Header("Retry-After"));
        Assert.Contains("full", refused.Error());

        // Queued jobs (no worker runs here) can be cancelled once; the poll then says cancelled.
        foreach (var location in locations)
        {
            var cancel = await Stalled.SendAsync(GatewayRequest.Delete(location));
            Assert.Equal(200, cancel.Status);
            Assert.Equal("cancelled", cancel.Json().GetProperty("status").GetString());
            var again = await Stalled.SendAsync(GatewayRequest.Delete(location));
            Assert.Equal(409, again.Status);
            Assert.Contains("can no longer be cancelled", again.Error());
            var poll = await Stalled.SendAsync(GatewayRequest.Get(location));
            Assert.Equal("cancelled", poll.Json().GetProperty("status").GetString());
        }
    }

    [Fact]
    public async Task Jobs_UnknownId_Answers404()
    {
        var get = await Serving.SendAsync(GatewayRequest.Get("/jobs/does-not-exist"));
        var delete = await Serving.SendAsync(GatewayRequest.Delete("/jobs/does-not-exist"));

        Assert.Equal(404, get.Status);
        Assert.Equal(404, delete.Status);
        Assert.Contains("unknown job", get.Error());
    }

    [Fact]
    public async Task Health_LiveAndReady_Answer200()
    {
        var live = await Serving.SendAsync(GatewayRequest.Get("/v2/health/live"));
        var ready = await Serving.SendAsync(GatewayRequest.Get("/v2/health/ready"));

        Assert.Equal(200, live.Status);
        Assert.Equal(200, ready.Status);
        Assert.True(ready.Json().GetProperty("ready").GetBoolean());
    }

    [Fact]
    public async Task ServerMetadata_ListsTheBinaryExtension()
    {
        var json = (await Serving.SendAsync(GatewayRequest.Get("/v2"))).Json();

        Assert.Equal("serverless-inference", json.GetProperty("name").GetString());
        Assert.Contains("binary_tensor_data", json.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task ModelMetadata_DescribesTheDemoModels()
    {
        var resnet = (await Serving.SendAsync(GatewayRequest.Get("/v2/models/resnet18"))).Json();
        var mlp = (await Serving.SendAsync(GatewayRequest.Get("/v2/models/mlp-bench/versions/1"))).Json();
        var ready = await Serving.SendAsync(GatewayRequest.Get("/v2/models/mlp-bench/ready"));
        var missing = await Serving.SendAsync(GatewayRequest.Get("/v2/models/nope"));

        Assert.Equal("Input247", resnet.GetProperty("inputs")[0].GetProperty("name").GetString());
        Assert.Equal([1L, 3, 224, 224], resnet.GetProperty("inputs")[0].GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal("FP32", mlp.GetProperty("inputs")[0].GetProperty("datatype").GetString());
        Assert.Equal([-1L, 512], mlp.GetProperty("inputs")[0].GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal(["1"], mlp.GetProperty("versions").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(200, ready.Status);
        Assert.Equal(404, missing.Status);
    }

    [Fact]
    public async Task Status_ShowsQueueWorkersProviderAndScaling()
    {
        await Serving.SendAsync(GatewayRequest.Post("/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, 1)))));

        var status = (await Serving.SendAsync(GatewayRequest.Get("/status"))).Json();

        Assert.True(status.GetProperty("queue").TryGetProperty("queued", out _));
        // The serving host runs the engine with the default Auto choice: CUDA where it runs, else CPU. Expect what an Auto
        // engine reports in this process (the CUDA probe is cached per process), not what this machine happens to be.
        Assert.Contains(AutoExecutionProvider(), status.GetProperty("execution_providers").EnumerateArray().Select(e => e.GetString()));
        Assert.NotEqual(0, status.GetProperty("workers").GetArrayLength());
        Assert.Contains("mlp-bench", status.GetProperty("warm_pool").GetProperty("models").EnumerateArray().Select(m => m.GetProperty("model").GetString()));
        Assert.NotEqual(0, status.GetProperty("scaling_decisions").GetArrayLength());
        // A model was loaded for a waiting job at least once in this host (this request's, or an earlier test's): its
        // cold start is listed with the stages the worker saw.
        var coldStart = status.GetProperty("cold_starts").EnumerateArray().First();
        Assert.True(coldStart.GetProperty("total_ms").GetDouble() > 0);
        Assert.True(coldStart.GetProperty("stages_ms").TryGetProperty("session_created", out _), coldStart.ToString());
    }

    [Theory]
    [InlineData("POST", "/v2/models/mlp-bench/infer")]
    [InlineData("POST", "/v2/models/tiny-lm/generate")]
    [InlineData("GET", "/jobs/0123")]
    [InlineData("DELETE", "/jobs/0123")]
    [InlineData("GET", "/jobs/0123/stream")]
    [InlineData("GET", "/v2")]
    [InlineData("GET", "/v2/models/mlp-bench")]
    [InlineData("GET", "/v2/models/mlp-bench/ready")]
    [InlineData("GET", "/status")]
    public async Task Auth_NoKeyOrAWrongOne_Answers401WithWwwAuthenticate(string method, string path)
    {
        var request = new GatewayRequest(method, path, method == "POST" ? Oip.Json(Oip.Request("input", [1, 512], new float[512])) : null);

        var missing = await Keyed.SendAsync(request);
        var wrong = await Keyed.SendAsync(request.With(TestKeys.Acme + "x"));
        var unknownId = await Keyed.SendAsync(request.With("si_f000000000000009_whatever", apiKeyHeader: true));

        foreach (var response in new[] { missing, wrong, unknownId })
        {
            Assert.Equal(401, response.Status);
            Assert.Equal("Bearer", response.Header("WWW-Authenticate"));
            Assert.Contains("API key", response.Error());
        }
    }

    [Theory]
    [InlineData("POST", "/v1/chat/completions")]
    [InlineData("POST", "/v1/completions")]
    [InlineData("GET", "/v1/models")]
    [InlineData("GET", "/v1/models/tiny-lm")]
    public async Task Auth_OpenAiRoutesWithoutAValidKey_Answer401InOpenAisShape(string method, string path)
    {
        var body = method == "POST" ? Oip.Raw("""{"model":"tiny-lm","prompt":"hi","messages":[{"role":"user","content":"hi"}]}""") : null;

        var response = await Keyed.SendAsync(new GatewayRequest(method, path, body).With("sk-not-a-key-of-ours"));

        Assert.Equal(401, response.Status);
        Assert.Equal("Bearer", response.Header("WWW-Authenticate"));
        var error = response.Json().GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task Auth_KeyAsBearerOrAsApiKeyHeader_IsAdmitted_AndHealthNeedsNone()
    {
        var bearer = await Keyed.SendAsync(GatewayRequest.Get("/v2/models/mlp-bench").With(TestKeys.Acme));
        var apiKey = await Keyed.SendAsync(GatewayRequest.Get("/v2").With(TestKeys.Beta, apiKeyHeader: true));
        var live = await Keyed.SendAsync(GatewayRequest.Get("/v2/health/live"));
        var ready = await Keyed.SendAsync(GatewayRequest.Get("/v2/health/ready"));

        Assert.Equal(200, bearer.Status);
        Assert.Equal(200, apiKey.Status);
        Assert.Equal(200, live.Status);
        Assert.Equal(200, ready.Status);
    }

    [Fact]
    public async Task Jobs_AnotherTenant_Gets404LikeAnUnknownJob_WhileTheOwnersKeysReadAndCancelIt()
    {
        var accepted = await Keyed.SendAsync(GatewayRequest.Post(
            "/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, 5))), ("Prefer", "respond-async")).With(TestKeys.Acme));
        Assert.Equal(202, accepted.Status);
        var location = accepted.Header("Location")!;
        var id = location["/jobs/".Length..];
        var unknownId = Guid.NewGuid().ToString("N");
        var unknown = await Keyed.SendAsync(GatewayRequest.Get("/jobs/" + unknownId).With(TestKeys.Beta));

        var get = await Keyed.SendAsync(GatewayRequest.Get(location).With(TestKeys.Beta));
        // Bounded: were the check missing, the stream would follow the queued job and never end.
        var stream = await Keyed.SendAsync(GatewayRequest.Get(location + "/stream").With(TestKeys.Beta)).WaitAsync(TimeSpan.FromSeconds(30));
        var cancel = await Keyed.SendAsync(GatewayRequest.Delete(location).With(TestKeys.Beta));
        var admin = await Keyed.SendAsync(GatewayRequest.Get(location).With(TestKeys.Admin));

        Assert.Equal(404, unknown.Status);
        foreach (var response in new[] { get, stream, cancel, admin })
        {
            Assert.Equal(404, response.Status);
            Assert.Equal(unknown.Text.Replace(unknownId, id, StringComparison.Ordinal), response.Text);
        }

        var owner = await Keyed.SendAsync(GatewayRequest.Get(location).With(TestKeys.AcmeSecond));
        Assert.Equal(200, owner.Status);
        Assert.Equal("queued", owner.Json().GetProperty("status").GetString());
        var cancelled = await Keyed.SendAsync(GatewayRequest.Delete(location).With(TestKeys.Acme));
        Assert.Equal(200, cancelled.Status);
        Assert.Equal("cancelled", cancelled.Json().GetProperty("status").GetString());
    }

    [Fact]
    public async Task Jobs_AGenerationsJob_IsItsTenantsOnly()
    {
        var accepted = await Keyed.SendAsync(GatewayRequest.Post(
            "/v2/models/tiny-lm/generate", Oip.Raw("""{"text_input":"hello","parameters":{"max_tokens":2}}"""), ("Prefer", "respond-async")).With(TestKeys.Acme));
        Assert.Equal(202, accepted.Status);
        var location = accepted.Header("Location")!;

        // Bounded: were the check missing, the stream would follow the queued job and never end.
        var stream = await Keyed.SendAsync(GatewayRequest.Get(location + "/stream").With(TestKeys.Beta)).WaitAsync(TimeSpan.FromSeconds(30));
        var cancel = await Keyed.SendAsync(GatewayRequest.Delete(location).With(TestKeys.Beta));
        var own = await Keyed.SendAsync(GatewayRequest.Delete(location).With(TestKeys.Acme));

        Assert.Equal(404, stream.Status);
        Assert.Equal(404, cancel.Status);
        Assert.Equal(200, own.Status);
    }

    [Fact]
    public async Task Limits_ConcurrentJobs_Answer429WithRetryAfterUntilAJobEnds()
    {
        GatewayRequest Submit(int seed) => GatewayRequest.Post(
            "/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, seed))), ("Prefer", "respond-async")).With(TestKeys.OneJob);

        var first = await Keyed.SendAsync(Submit(1));
        var refused = await Keyed.SendAsync(Submit(2));
        var cancel = await Keyed.SendAsync(GatewayRequest.Delete(first.Header("Location")!).With(TestKeys.OneJob));
        var again = await Keyed.SendAsync(Submit(3));

        Assert.Equal(202, first.Status);
        Assert.Equal(429, refused.Status);
        Assert.Equal("1", refused.Header("Retry-After"));
        Assert.Contains("jobs that have not ended", refused.Error());
        Assert.Null(refused.Header("X-Job-Id"));
        Assert.Equal(200, cancel.Status);
        Assert.Equal(202, again.Status);
        Assert.Equal(200, (await Keyed.SendAsync(GatewayRequest.Delete(again.Header("Location")!).With(TestKeys.OneJob))).Status);
    }

    [Fact]
    public async Task Limits_RequestRate_Answers429WithRetryAfterOnceTheBurstIsSpent()
    {
        var first = await Keyed.SendAsync(GatewayRequest.Get("/v2").With(TestKeys.Slow));
        var second = await Keyed.SendAsync(GatewayRequest.Get("/v2/models/mlp-bench").With(TestKeys.Slow));
        var third = await Keyed.SendAsync(GatewayRequest.Get("/v2").With(TestKeys.Slow));
        var openAi = await Keyed.SendAsync(GatewayRequest.Get("/v1/models").With(TestKeys.Slow));
        var otherKey = await Keyed.SendAsync(GatewayRequest.Get("/v2").With(TestKeys.Beta));

        Assert.Equal(200, first.Status);
        Assert.Equal(200, second.Status);
        Assert.Equal(429, third.Status);
        Assert.InRange(int.Parse(third.Header("Retry-After")!, NumberStyles.None, CultureInfo.InvariantCulture), 90, 100);
        Assert.Contains("request rate", third.Error());
        Assert.Equal(429, openAi.Status);
        Assert.NotNull(openAi.Header("Retry-After"));
        Assert.Equal("rate_limit_exceeded", openAi.Json().GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(200, otherKey.Status);
    }

    [Fact]
    public async Task Status_NeedsAnAdminKey()
    {
        var tenant = await Keyed.SendAsync(GatewayRequest.Get("/status").With(TestKeys.Acme));
        var admin = await Keyed.SendAsync(GatewayRequest.Get("/status").With(TestKeys.Admin));

        Assert.Equal(403, tenant.Status);
        Assert.Contains("admin", tenant.Error());
        Assert.Equal(200, admin.Status);
        Assert.True(admin.Json().TryGetProperty("queue", out _));
    }

    /// <summary>Polls <c>GET {location}</c> until the job's status is <paramref name="until"/>; fails if it ends otherwise
    /// or is still queued or running after 60 s.</summary>
    public static async Task<JsonElement> PollAsync(IGatewayDriver gateway, string location, string until)
    {
        ArgumentNullException.ThrowIfNull(gateway);
        var giveUp = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var poll = await gateway.SendAsync(GatewayRequest.Get(location));
            Assert.Equal(200, poll.Status);
            var job = poll.Json();
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

    /// <summary>The execution provider an engine with <c>Inference:Onnx:ExecutionProvider=Auto</c> chooses here.</summary>
    private static string AutoExecutionProvider() => new OnnxInferenceEngine(
        Options.Create(new OnnxEngineOptions { ExecutionProvider = OnnxExecutionProvider.Auto }),
        NullLogger<OnnxInferenceEngine>.Instance).ExecutionProvider;
}
