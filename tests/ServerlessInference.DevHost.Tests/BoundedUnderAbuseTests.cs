using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ServerlessInference.Testing.Fuzzing;
using ServerlessInference.Testing.Gateway;
using Xunit.Abstractions;

namespace ServerlessInference.DevHost.Tests;

/// <summary>The DevHost under abuse: Kestrel's limits, a queue full in bytes, odd <c>Prefer</c> values, answered results
/// kept briefly, and mutated requests through the real HTTP pipeline.</summary>
public sealed class BoundedUnderAbuseTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "si-abuse-tests", Guid.NewGuid().ToString("N"));

    /// <summary>Workers never start, so jobs stay queued and only the gateway's own paths run.</summary>
    private static readonly Dictionary<string, string?> s_stalled = new()
    {
        ["Inference:Scaling:ActivationThreshold"] = "1000000",
        ["Inference:Queue:Capacity"] = "100000",
    };

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // Already gone, or still in use by a host that is stopping.
        }
    }

    private DevHostFactory Host(Dictionary<string, string?> settings) => new(_root, settings);

    private static ByteArrayContent Json(InferenceRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>();
        OipCodec.WriteRequest(buffer, request, binary: false);
        var content = new ByteArrayContent(buffer.WrittenSpan.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    private static InferenceRequest MlpRequest(int seed) => Oip.Request("input", [1, 512], Oip.Deterministic(512, seed));

    [Fact]
    public void Kestrel_NothingConfigured_HasThePlatformDefaults()
    {
        using var host = Host(new() { ["Inference:DemoModels:Seed"] = "false" });

        var limits = host.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits;

        Assert.Equal(2048, limits.MaxConcurrentConnections);
        Assert.Equal(TimeSpan.FromSeconds(10), limits.RequestHeadersTimeout);
        Assert.Equal(TimeSpan.FromSeconds(60), limits.KeepAliveTimeout);
        Assert.Equal(32 * 1024, limits.MaxRequestHeadersTotalSize);
        Assert.Equal(1024, limits.MinRequestBodyDataRate?.BytesPerSecond);
        Assert.Equal(TimeSpan.FromSeconds(5), limits.MinRequestBodyDataRate?.GracePeriod);
    }

    [Fact]
    public void Kestrel_LimitsConfigured_ReachKestrelServerOptions()
    {
        using var host = Host(new()
        {
            ["Inference:DemoModels:Seed"] = "false",
            ["Kestrel:Limits:MaxConcurrentConnections"] = "17",
            ["Kestrel:Limits:RequestHeadersTimeout"] = "00:00:03",
            ["Kestrel:Limits:KeepAliveTimeout"] = "00:00:07",
            ["Kestrel:Limits:MaxRequestHeadersTotalSize"] = "4096",
            ["Kestrel:Limits:MinRequestBodyDataRate:BytesPerSecond"] = "5000",
            ["Kestrel:Limits:MinRequestBodyDataRate:GracePeriod"] = "00:00:02",
            ["Kestrel:Limits:MinResponseDataRate:BytesPerSecond"] = "0",
        });

        var limits = host.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits;

        Assert.Equal(17, limits.MaxConcurrentConnections);
        Assert.Equal(TimeSpan.FromSeconds(3), limits.RequestHeadersTimeout);
        Assert.Equal(TimeSpan.FromSeconds(7), limits.KeepAliveTimeout);
        Assert.Equal(4096, limits.MaxRequestHeadersTotalSize);
        Assert.Equal(5000, limits.MinRequestBodyDataRate?.BytesPerSecond);
        Assert.Equal(TimeSpan.FromSeconds(2), limits.MinRequestBodyDataRate?.GracePeriod);
        Assert.Null(limits.MinResponseDataRate);
    }

    [Theory]
    [InlineData("Kestrel:Limits:MaxConcurrentConnections", "lots")]
    [InlineData("Kestrel:Limits:KeepAliveTimeout", "-00:00:01")]
    [InlineData("Kestrel:Limits:MinRequestBodyDataRate:BytesPerSecond", "NaN")]
    [InlineData("Kestrel:Limits:MinRequestBodyDataRate:GracePeriod", "00:00:00.5")]
    public void Kestrel_BadLimit_FailsAtStartNamingTheSetting(string setting, string value)
    {
        using var host = Host(new() { ["Inference:DemoModels:Seed"] = "false", [setting] = value });

        var ex = Assert.ThrowsAny<Exception>(() => host.Server);

        Assert.Contains(setting, ex.ToString());
    }

    [Fact]
    public async Task Infer_QueueFullInBytes_Answers429WithRetryAfterAndAnOipError()
    {
        // An mlp-bench request is 2 KiB of floats: two fit in 6 KiB, a third does not.
        using var host = Host(new(s_stalled)
        {
            ["Inference:Queue:MaxQueuedBytes"] = "6144",
            ["Inference:Queue:RetryAfterSeconds"] = "4",
        });
        using var client = host.CreateClient();

        Task<HttpResponseMessage> PostAsync(int seed)
        {
            var message = new HttpRequestMessage(HttpMethod.Post, "/v2/models/mlp-bench/infer") { Content = Json(MlpRequest(seed)) };
            message.Headers.Add("Prefer", "respond-async");
            return client.SendAsync(message);
        }

        Assert.Equal(HttpStatusCode.Accepted, (await PostAsync(1)).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await PostAsync(2)).StatusCode);
        using var full = await PostAsync(3);

        Assert.Equal(HttpStatusCode.TooManyRequests, full.StatusCode);
        Assert.Equal("4", full.Headers.GetValues("Retry-After").Single());
        using var body = JsonDocument.Parse(await full.Content.ReadAsStringAsync());
        Assert.Contains("bytes", body.RootElement.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Infer_MalformedPreferWait_Answers400AndQueuesNothing()
    {
        using var host = Host(new(s_stalled));
        using var client = host.CreateClient();
        foreach (var prefer in new[] { "wait=NaN", "wait=-1", "wait=", "respond-async, wait=Infinity", "wait=1e400x" })
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, "/v2/models/mlp-bench/infer") { Content = Json(MlpRequest(1)) };
            message.Headers.TryAddWithoutValidation("Prefer", prefer);

            using var response = await client.SendAsync(message);

            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.StartsWith("Prefer: wait must be a non-negative number of seconds", body.RootElement.GetProperty("error").GetString());
            Assert.False(response.Headers.Contains("X-Job-Id"), prefer);
        }

        using var status = JsonDocument.Parse(await client.GetStringAsync("/status"));
        output.WriteLine(status.RootElement.GetProperty("queue").ToString());
        Assert.Equal(0, status.RootElement.GetProperty("queue").GetProperty("queued").GetInt64());
    }

    [Fact]
    public async Task Infer_AnsweredSynchronously_KeepsTheResultOnlyForAnsweredRetention()
    {
        using var host = Host(new()
        {
            ["Inference:Scaling:MinReplicas"] = "1",
            ["Inference:Results:AnsweredRetention"] = "00:00:01",
        });
        using var client = host.CreateClient();

        using var answered = await client.PostAsync("/v2/models/mlp-bench/infer", Json(MlpRequest(1)));
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        var answeredId = answered.Headers.GetValues("X-Job-Id").Single();
        using var asyncMessage = new HttpRequestMessage(HttpMethod.Post, "/v2/models/mlp-bench/infer") { Content = Json(MlpRequest(2)) };
        asyncMessage.Headers.Add("Prefer", "respond-async");
        using var accepted = await client.SendAsync(asyncMessage);
        var acceptedId = accepted.Headers.GetValues("X-Job-Id").Single();

        // The answered record goes after about a second (real time: the host runs on the system clock).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        HttpStatusCode status;
        do
        {
            await Task.Delay(100);
            using var poll = await client.GetAsync($"/jobs/{answeredId}");
            status = poll.StatusCode;
        }
        while (status == HttpStatusCode.OK && DateTime.UtcNow < deadline);

        Assert.Equal(HttpStatusCode.NotFound, status);
        using var kept = await client.GetAsync($"/jobs/{acceptedId}");
        Assert.Equal(HttpStatusCode.OK, kept.StatusCode);
    }

    [Fact]
    public async Task Infer_MutatedRequests_NeverAnswer5xx()
    {
        using var host = Host(new(s_stalled) { ["Inference:Gateway:MaxBodyBytes"] = "1048576" });
        using var client = host.CreateClient();
        var json = Json(MlpRequest(3));
        var binary = new ArrayBufferWriter<byte>();
        var headerLength = OipCodec.WriteRequest(binary, MlpRequest(4), binary: true);
        var seeds = new List<(byte[] Body, int? HeaderLength)>
        {
            (await json.ReadAsByteArrayAsync(), null),
            (binary.WrittenSpan.ToArray(), headerLength),
        };
        var fuzzer = new OipRequestFuzzer(seeds, OipRequestFuzzer.Seed);
        string[] prefers = ["respond-async", "wait=0", "respond-async, wait=0", "wait=NaN", "wait=-1, respond-async", "wait=1e400x"];
        var iterations = Math.Max(1, OipRequestFuzzer.Iterations(OipRequestFuzzFallback) / 10);
        var statuses = new Dictionary<int, int>();
        var failures = new List<string>();
        for (var i = 0; i < iterations; i++)
        {
            var input = fuzzer.Next();
            using var message = new HttpRequestMessage(HttpMethod.Post, "/v2/models/mlp-bench/infer") { Content = new ByteArrayContent(input.Body) };
            message.Content.Headers.ContentType = new MediaTypeHeaderValue(input.HeaderLength is null ? "application/json" : "application/octet-stream");
            if (input.HeaderLength is { } length)
            {
                message.Headers.TryAddWithoutValidation("Inference-Header-Content-Length", length.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            message.Headers.TryAddWithoutValidation("Prefer", prefers[i % prefers.Length]);
            using var response = await client.SendAsync(message);
            var code = (int)response.StatusCode;
            statuses[code] = statuses.GetValueOrDefault(code) + 1;
            if (code >= 500)
            {
                failures.Add($"input {i}: {code} {await response.Content.ReadAsStringAsync()}\n    {input.Describe()}");
            }
        }

        output.WriteLine($"{iterations} inputs (seed {OipRequestFuzzer.Seed}): " + string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}")));
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(10)));
    }

    /// <summary>The parser's default count (ServerlessInference.Core.Tests' fuzz test); a tenth goes through HTTP.</summary>
    private const int OipRequestFuzzFallback = 4000;
}
