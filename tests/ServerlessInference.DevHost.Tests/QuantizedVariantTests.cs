using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.DevHost.Tests;

/// <summary><c>models quantize</c> and how requests reach the INT8 variant: asked for, refused, and switched to by queue depth.</summary>
public sealed class QuantizedVariantTests : IDisposable
{
    private const string Model = "mlp-small";
    private const string Plain = "mlp-plain";
    private static readonly int[] Layers = [64, 96, 96, 8];

    private readonly string _root = Path.Combine(Path.GetTempPath(), "si-variant-tests", Guid.NewGuid().ToString("N"));
    private readonly FolderModelStore _store;

    public QuantizedVariantTests()
    {
        _store = new FolderModelStore(Path.Combine(_root, "models"));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // A host still closing a file; the temp folder is cleaned by the OS.
        }
    }

    [Fact]
    public async Task ModelsQuantize_Model_StoresInt8VersionBesideTheOriginalWithItsOwnSha()
    {
        var source = await UploadAsync(Model);
        var output = new StringWriter();

        var code = await QuantizeAsync(output, Model);

        Assert.Equal(0, code);
        var variant = await _store.GetManifestAsync(Model, "1-int8", CancellationToken.None);
        Assert.NotNull(variant);
        Assert.Equal((ModelVariants.Int8, "1"), (variant.Variant, variant.SourceVersion));
        var file = await File.ReadAllBytesAsync(Path.Combine(_store.Root, Model, "1-int8", variant.File));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(file)), variant.Sha256);
        Assert.Equal(file.Length, variant.SizeBytes);
        Assert.True(variant.SizeBytes < source.SizeBytes / 3, $"{variant.SizeBytes} from {source.SizeBytes}");
        Assert.Equal(source.Inputs[0].Shape, variant.Inputs[0].Shape);
        // The original is untouched and still what a request without a version gets.
        var latest = await _store.GetManifestAsync(Model, null, CancellationToken.None);
        Assert.Equal((source.Version, source.Sha256, source.SizeBytes), (latest!.Version, latest.Sha256, latest.SizeBytes));
        Assert.Contains("1-int8", output.ToString());
        Assert.Contains("3 MatMul/Gemm weight(s)", output.ToString());
    }

    [Fact]
    public async Task ModelsQuantize_WithQueueDepthRule_WritesTheRuleIntoTheSourceManifest()
    {
        var source = await UploadAsync(Model);

        var code = await QuantizeAsync(new StringWriter(), Model, "--version", "1", "--when-queue-depth-at-least", "6");

        Assert.Equal(0, code);
        var updated = await _store.GetManifestAsync(Model, "1", CancellationToken.None);
        Assert.Equal(6, updated!.Variants![ModelVariants.Int8].WhenQueueDepthAtLeast);
        Assert.Equal(source.Sha256, updated.Sha256);
    }

    [Theory]
    [InlineData(new[] { "nope" }, 1, "no model 'nope'")]
    [InlineData(new[] { Model, "--version", "7" }, 1, "has no version '7'")]
    [InlineData(new[] { Model, "--when-queue-depth-at-least", "0" }, 2, "at least 1")]
    [InlineData(new string[0], 2, "needs the model's name")]
    public async Task ModelsQuantize_BadArguments_FailWithTheReason(string[] args, int expectedCode, string expectedError)
    {
        await UploadAsync(Model);
        var error = new StringWriter();

        var code = await ModelsCommand.RunAsync(["models", "quantize", .. args, $"--Inference:ModelStore:Root={_store.Root}"], new StringWriter(), error);

        Assert.Equal(expectedCode, code);
        Assert.Contains(expectedError, error.ToString());
    }

    [Fact]
    public async Task ModelsQuantize_AVariant_IsRefused()
    {
        await UploadAsync(Model);
        await QuantizeAsync(new StringWriter(), Model);
        var error = new StringWriter();

        var code = await ModelsCommand.RunAsync(["models", "quantize", Model, "--version", "1-int8", $"--Inference:ModelStore:Root={_store.Root}"], new StringWriter(), error);

        Assert.Equal(1, code);
        Assert.Contains("already the 'int8' variant", error.ToString());
    }

    [Fact]
    public async Task Infer_VariantParameter_RunsOnTheInt8VersionCloseToFp32()
    {
        await UploadAsync(Model);
        await QuantizeAsync(new StringWriter(), Model);
        await using var host = new DevHostFactory(_root, Serving);
        using var client = host.CreateClient();
        var x = Input(seed: 3);

        var fp32 = await InferAsync(client, $"/v2/models/{Model}/infer", x, variant: null);
        var int8 = await InferAsync(client, $"/v2/models/{Model}/infer", x, variant: "int8");
        var pinned = await InferAsync(client, $"/v2/models/{Model}/infer", x, variant: "none");

        Assert.Equal((HttpStatusCode.OK, "1"), (fp32.Status, fp32.Body.GetProperty("model_version").GetString()));
        Assert.Equal((HttpStatusCode.OK, "1-int8"), (int8.Status, int8.Body.GetProperty("model_version").GetString()));
        Assert.Equal("1", pinned.Body.GetProperty("model_version").GetString());
        var expected = Outputs(fp32.Body);
        var actual = Outputs(int8.Body);
        Assert.NotEqual(expected, actual); // really the quantized weights
        var spread = expected.Max() - expected.Min();
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) < 0.05 * spread, $"output {i}: {actual[i]} against {expected[i]}");
        }
    }

    [Fact]
    public async Task Infer_VariantThatDoesNotExistOrIsUnknown_Answers404Or400WithTheReason()
    {
        await UploadAsync(Model);
        await UploadAsync(Plain);
        await QuantizeAsync(new StringWriter(), Model);
        await using var host = new DevHostFactory(_root, Stalled);
        using var client = host.CreateClient();

        var missing = await InferAsync(client, $"/v2/models/{Plain}/infer", Input(1), variant: "int8");
        var unknown = await InferAsync(client, $"/v2/models/{Model}/infer", Input(1), variant: "int4");
        var notText = await InferAsync(client, $"/v2/models/{Model}/infer", Input(1), variant: 8);
        var ofVariant = await InferAsync(client, $"/v2/models/{Model}/versions/1-int8/infer", Input(1), variant: "int8");

        Assert.Equal(HttpStatusCode.NotFound, missing.Status);
        Assert.Equal($"model '{Plain}' version '1' has no 'int8' variant (make one with: models quantize {Plain} --version 1)", missing.Body.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, unknown.Status);
        Assert.Contains("parameter 'variant' is 'int4'; it must be one of int8 or 'none'", unknown.Body.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, notText.Status);
        Assert.Contains("must be a string", notText.Body.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.Accepted, ofVariant.Status); // the variant itself, named by version, with its own name
    }

    [Fact]
    public async Task Infer_QueueDeepensPastTheRule_SwitchesToInt8AndBackShownInStatusAndMetrics()
    {
        await UploadAsync(Model);
        await QuantizeAsync(new StringWriter(), Model, "--when-queue-depth-at-least", "3");
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-04T12:00:00Z", CultureInfo.InvariantCulture));
        await using var stalled = new DevHostFactory(_root, Stalled);
        await using var host = stalled.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<TimeProvider>(clock)));
        using var client = host.CreateClient();

        // Nothing runs, so every accepted job stays queued: 1, 2, 3 queued before the 4th is decided.
        var versions = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            versions.Add(await SubmitAsync(client, Input(i)));
            clock.Advance(TimeSpan.FromSeconds(1.1)); // past the depth read's reuse window
        }

        Assert.Equal(["1", "1", "1", "1-int8", "1-int8", "1-int8"], versions);
        var status = JsonDocument.Parse(await client.GetStringAsync("/status")).RootElement;
        var state = Assert.Single(status.GetProperty("variant_switches").EnumerateArray());
        Assert.Equal(Model, state.GetProperty("model").GetString());
        Assert.True(state.GetProperty("active").GetBoolean());
        Assert.Equal(3, state.GetProperty("when_queue_depth_at_least").GetInt32());
        Assert.Equal(5, state.GetProperty("queued_seen").GetInt64());
        Assert.Equal(1, state.GetProperty("switches").GetInt64());
        Assert.Equal(3, state.GetProperty("served").GetProperty("1-int8").GetInt64());
        var metrics = await client.GetStringAsync("/metrics");
        Assert.True(Counter(metrics, "inference_variant_switches_total", $"model=\"{Model}\"", "to=\"variant\"", "variant=\"int8\"") == 1, Lines(metrics, "inference_variant_"));
        Assert.True(Counter(metrics, "inference_variant_requests_total", $"model=\"{Model}\"", "variant=\"int8\"") == 3, Lines(metrics, "inference_variant_"));

        // Back to the original once the queue is at half the threshold or less. A cancelled job stays queued until a
        // worker drops it, so take the jobs off the queue as a worker would.
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var leases = await queue.ReceiveAsync(100, TimeSpan.Zero, CancellationToken.None);
        Assert.Equal(6, leases.Count);
        foreach (var lease in leases)
        {
            await lease.CompleteAsync(CancellationToken.None);
        }

        clock.Advance(TimeSpan.FromSeconds(1.1));
        Assert.Equal("1", await SubmitAsync(client, Input(9)));
        status = JsonDocument.Parse(await client.GetStringAsync("/status")).RootElement;
        state = Assert.Single(status.GetProperty("variant_switches").EnumerateArray());
        Assert.False(state.GetProperty("active").GetBoolean());
        Assert.Equal(2, state.GetProperty("switches").GetInt64());
    }

    private static readonly IReadOnlyDictionary<string, string?> Serving = new Dictionary<string, string?>
    {
        ["Inference:DemoModels:Seed"] = "false",
        ["Inference:Scaling:MinReplicas"] = "1",
    };

    private static readonly IReadOnlyDictionary<string, string?> Stalled = new Dictionary<string, string?>
    {
        ["Inference:DemoModels:Seed"] = "false",
        ["Inference:Scaling:ActivationThreshold"] = "1000",
    };

    private async Task<ModelManifest> UploadAsync(string name)
    {
        using var weights = new MemoryStream(MlpBenchModel.Build(Layers, seed: 11));
        return await _store.UploadAsync(MlpBenchModel.Manifest(layerSizes: Layers) with { Name = name }, weights, CancellationToken.None);
    }

    private Task<int> QuantizeAsync(TextWriter output, params string[] args) =>
        ModelsCommand.RunAsync(["models", "quantize", .. args, $"--Inference:ModelStore:Root={_store.Root}"], output, Console.Error);

    private static float[] Input(int seed) => [.. Enumerable.Range(0, Layers[0]).Select(i => MathF.Sin((seed * 131) + i))];

    private static async Task<(HttpStatusCode Status, JsonElement Body)> InferAsync(HttpClient client, string path, float[] x, object? variant)
    {
        var data = string.Join(",", x.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
        var parameters = variant switch
        {
            null => "",
            string name => $",\"parameters\":{{\"variant\":\"{name}\"}}",
            _ => $",\"parameters\":{{\"variant\":{Convert.ToString(variant, CultureInfo.InvariantCulture)}}}",
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent($"{{\"inputs\":[{{\"name\":\"input\",\"shape\":[1,{x.Length}],\"datatype\":\"FP32\",\"data\":[{data}]}}]{parameters}}}", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("Prefer", "wait=30");
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>Submits without waiting and returns the version the job was queued for.</summary>
    private static async Task<string> SubmitAsync(HttpClient client, float[] x)
    {
        var data = string.Join(",", x.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{Model}/infer")
        {
            Content = new StringContent($"{{\"inputs\":[{{\"name\":\"input\",\"shape\":[1,{x.Length}],\"datatype\":\"FP32\",\"data\":[{data}]}}]}}", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("Prefer", "respond-async");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var location = response.Headers.Location!.ToString();
        var job = JsonDocument.Parse(await client.GetStringAsync(location)).RootElement;
        return job.GetProperty("version").GetString()!;
    }

    /// <summary>The Prometheus lines that start with <paramref name="prefix"/>, so a failure shows them.</summary>
    private static string Lines(string metrics, string prefix) =>
        string.Join('\n', metrics.Split('\n').Where(l => l.StartsWith(prefix, StringComparison.Ordinal)));

    /// <summary>The value of a Prometheus counter line that has <paramref name="labels"/> among its labels (the exporter
    /// adds its own, such as otel_scope_name); -1 when there is none.</summary>
    private static double Counter(string metrics, string name, params string[] labels)
    {
        foreach (var line in metrics.Split('\n'))
        {
            if (line.StartsWith(name + "{", StringComparison.Ordinal) && line.IndexOf('}', StringComparison.Ordinal) is var end and > 0)
            {
                var found = line[(name.Length + 1)..end].Split(',');
                if (labels.All(found.Contains))
                {
                    return double.Parse(line[(end + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                }
            }
        }

        return -1;
    }

    private static float[] Outputs(JsonElement body) =>
        [.. body.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(v => v.GetSingle())];
}
