using System.Globalization;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;

namespace ServerlessInference.Cli.Tests;

/// <summary><c>si</c> against a running DevHost: every command, its JSON, its tables, and its exit codes.</summary>
[Collection(DevHostCollection.Name)]
public sealed class EndToEndTests(DevHostFixture host)
{
    private static readonly float[] s_rows = [0.5f, -1f, 2f, 0.25f, 1.5f, 0f, -0.75f, 3f];

    [Fact]
    public async Task ModelsPush_OnnxFile_WritesAManifestReadFromTheGraphWithItsSha256()
    {
        var run = await Si("models", "push", "push-mlp", host.MlpFile, "--version", "4", "--max-batch-size", "16", "--store", host.Store, "--json");

        Assert.True(run.ExitCode == 0, run.ToString());
        var manifest = run.Json();
        Assert.Equal("push-mlp", manifest.GetProperty("name").GetString());
        Assert.Equal("4", manifest.GetProperty("version").GetString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(host.MlpFile))), manifest.GetProperty("sha256").GetString());
        Assert.Equal(new FileInfo(host.MlpFile).Length, manifest.GetProperty("size_bytes").GetInt64());
        Assert.True(manifest.GetProperty("dynamic_batch").GetBoolean());
        Assert.Equal(16, manifest.GetProperty("max_batch_size").GetInt32());
        Assert.Equal("""[{"name":"input","datatype":"FP32","shape":[-1,4]}]""", Compact(manifest.GetProperty("inputs")));
        Assert.Equal("""[{"name":"output","datatype":"FP32","shape":[-1,3]}]""", Compact(manifest.GetProperty("outputs")));
        Assert.True(File.Exists(Path.Combine(host.Store, "push-mlp", "4", "manifest.json")));
    }

    [Fact]
    public async Task ModelsPush_NoVersion_TakesTheNextNumber_AndLsListsBoth()
    {
        Assert.Equal(0, (await Si("models", "push", "ver-mlp", host.MlpFile, "--store", host.Store)).ExitCode);
        var second = await Si("models", "push", "ver-mlp", host.MlpFile, "--store", host.Store);

        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("pushed ver-mlp/2", second.Stdout, StringComparison.Ordinal);
        var listed = (await Si("models", "ls", "--store", host.Store, "--json")).Json().GetProperty("models").EnumerateArray()
            .Select(m => $"{m.GetProperty("name").GetString()}/{m.GetProperty("version").GetString()}").ToList();
        Assert.Contains("ver-mlp/1", listed);
        Assert.Contains("ver-mlp/2", listed);
        Assert.Contains("tiny-lm/1", listed);
        var table = await Si("models", "ls", "--store", host.Store);
        Assert.Contains("ver-mlp", table.Stdout, StringComparison.Ordinal);
        Assert.Contains("input FP32 [-1,4]", table.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelsRm_OneVersionThenAll_GoneFromTheStore_UnknownIsRefused()
    {
        await Si("models", "push", "rm-mlp", host.MlpFile, "--version", "1", "--store", host.Store);
        await Si("models", "push", "rm-mlp", host.MlpFile, "--version", "2", "--store", host.Store);

        var one = await Si("models", "rm", "rm-mlp", "--version", "2", "--store", host.Store, "--json");
        Assert.True(one.ExitCode == 0, one.ToString());
        Assert.Equal("""{"removed":["rm-mlp/2"]}""", Compact(one.Json()));
        Assert.True(Directory.Exists(Path.Combine(host.Store, "rm-mlp", "1")));

        Assert.Equal(0, (await Si("models", "rm", "rm-mlp", "--store", host.Store)).ExitCode);
        Assert.False(Directory.Exists(Path.Combine(host.Store, "rm-mlp")));

        var again = await Si("models", "rm", "rm-mlp", "--store", host.Store);
        Assert.Equal(ExitCodes.Refused, again.ExitCode);
        Assert.Equal("", again.Stdout);
        AssertOneLine(again.Stderr, "holds no model 'rm-mlp'");
    }

    [Fact]
    public async Task Infer_JsonAndNpy_GiveTheOutputsOfTheModelRunDirectly()
    {
        await PushAsync("infer-mlp");
        var json = Path.Combine(host.Root, "infer.json");
        await File.WriteAllTextAsync(json, JsonSerializer.Serialize(new { inputs = new[] { new { name = "input", shape = new[] { 2, 4 }, datatype = "FP32", data = s_rows } } }));
        var npy = Path.Combine(host.Root, "infer.npy");
        await File.WriteAllBytesAsync(npy, NpyWriter.Write("<f4", [2, 4], NpyWriter.Floats(s_rows)));
        var npy2 = Path.Combine(host.Root, "infer-v2.npy");
        await File.WriteAllBytesAsync(npy2, NpyWriter.Write("<f4", [2, 4], NpyWriter.Floats(s_rows), major: 2));
        var expected = Reference(host.MlpFile, s_rows, 2);

        foreach (var input in new[] { json, npy, "input=" + npy2 })
        {
            var run = await Si("infer", "infer-mlp", "--input", input, "--json");

            Assert.True(run.ExitCode == 0, run.ToString());
            var output = run.Json().GetProperty("outputs")[0];
            Assert.Equal("[2,3]", Compact(output.GetProperty("shape")));
            var data = output.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            Assert.Equal(expected.Length, data.Length);
            for (var i = 0; i < data.Length; i++)
            {
                Assert.Equal(expected[i], data[i], 1e-5f);
            }
        }

        var table = await Si("infer", "infer-mlp", "--input", npy);
        Assert.Contains("output", table.Stdout, StringComparison.Ordinal);
        Assert.Contains("[2,3]", table.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Infer_UnknownModel_ExitRefused_OneLineNamingTheServerError()
    {
        var npy = Path.Combine(host.Root, "unknown.npy");
        await File.WriteAllBytesAsync(npy, NpyWriter.Write("<f4", [1, 4], NpyWriter.Floats(1, 2, 3, 4)));

        var run = await Si("infer", "no-such-model", "--input", "x=" + npy, "--json");

        Assert.Equal(ExitCodes.Refused, run.ExitCode);
        Assert.Equal("", run.Stdout);
        AssertOneLine(run.Stderr, "404 Not Found");
        Assert.Contains("no-such-model", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Infer_BadInputs_UsageErrorBeforeAnyRequest()
    {
        var missing = await Si("infer", "m");
        Assert.Equal(ExitCodes.Usage, missing.ExitCode);
        AssertOneLine(missing.Stderr, "--input");

        var bad = Path.Combine(host.Root, "bad.npy");
        await File.WriteAllBytesAsync(bad, NpyWriter.Write(">f4", [1], NpyWriter.Floats(1)));
        var bigEndian = await CliRunner.RunAsync("infer", "m", "--input", bad, "--url", "http://127.0.0.1:1");
        Assert.Equal(ExitCodes.Usage, bigEndian.ExitCode);
        AssertOneLine(bigEndian.Stderr, "big-endian");

        var unknownCommand = await Si("frobnicate");
        Assert.Equal(ExitCodes.Usage, unknownCommand.ExitCode);
        AssertOneLine(unknownCommand.Stderr, "si: ");
    }

    [Fact]
    public async Task Unreachable_ExitServerError_OneLine()
    {
        var run = await CliRunner.RunAsync("status", "--url", $"http://127.0.0.1:{DevHostFixture.FreePort()}");

        Assert.Equal(ExitCodes.ServerError, run.ExitCode);
        AssertOneLine(run.Stderr, "cannot reach");
    }

    [Fact]
    public async Task Jobs_AsyncInferThenWaitAndGet_Succeeded_CancelTooLateRefused()
    {
        await PushAsync("jobs-mlp");
        var npy = Path.Combine(host.Root, "jobs.npy");
        await File.WriteAllBytesAsync(npy, NpyWriter.Write("<f4", [1, 4], NpyWriter.Floats(1, 2, 3, 4)));

        var accepted = await Si("infer", "jobs-mlp", "--input", npy, "--async", "--json");
        Assert.True(accepted.ExitCode == 0, accepted.ToString());
        var id = accepted.Json().GetProperty("id").GetString()!;

        var waited = await Si("jobs", "wait", id, "--interval", "0.05", "--timeout", "60", "--json");
        Assert.True(waited.ExitCode == 0, waited.ToString());
        Assert.Equal("succeeded", waited.Json().GetProperty("status").GetString());
        Assert.Equal("[1,3]", Compact(waited.Json().GetProperty("response").GetProperty("outputs")[0].GetProperty("shape")));

        var got = await Si("jobs", "get", id, "--json");
        Assert.Equal("succeeded", got.Json().GetProperty("status").GetString());
        var table = await Si("jobs", "get", id);
        Assert.Contains("succeeded", table.Stdout, StringComparison.Ordinal);

        var cancel = await Si("jobs", "cancel", id);
        Assert.Equal(ExitCodes.Refused, cancel.ExitCode);
        AssertOneLine(cancel.Stderr, "409 Conflict");

        var unknown = await Si("jobs", "get", "no-such-job");
        Assert.Equal(ExitCodes.Refused, unknown.ExitCode);
        AssertOneLine(unknown.Stderr, "404 Not Found");
    }

    [Fact]
    public async Task Generate_TinyLm_StreamsTheSameTextAsTheUnstreamedCompletion()
    {
        using var http = new HttpClient { BaseAddress = new Uri(host.Url) };
        var response = await http.PostAsJsonAsync("/v1/completions", new { model = "tiny-lm", prompt = "the cat", max_tokens = 12, temperature = 0 });
        response.EnsureSuccessStatusCode();
        using var completion = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var expected = completion.RootElement.GetProperty("choices")[0].GetProperty("text").GetString();
        var tokens = completion.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.False(string.IsNullOrEmpty(expected));

        var streamed = await Si("generate", "tiny-lm", "the cat", "--max-tokens", "12", "--temperature", "0");
        var json = await Si("generate", "tiny-lm", "the cat", "--max-tokens", "12", "--temperature", "0", "--json");

        Assert.True(streamed.ExitCode == 0, streamed.ToString());
        Assert.Equal(expected + "\n", streamed.Stdout);
        Assert.Equal(expected, json.Json().GetProperty("text").GetString());
        Assert.Equal(tokens, json.Json().GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Generate_UnknownModel_RefusedWithOpenAiMessage()
    {
        var run = await Si("generate", "nope-lm", "hi");

        Assert.Equal(ExitCodes.Refused, run.ExitCode);
        AssertOneLine(run.Stderr, "404 Not Found");
    }

    [Fact]
    public async Task Status_JsonTableAndWatch_ShowQueueAndWorkers()
    {
        await PushAsync("status-mlp");
        var npy = Path.Combine(host.Root, "status.npy");
        await File.WriteAllBytesAsync(npy, NpyWriter.Write("<f4", [1, 4], NpyWriter.Floats(1, 2, 3, 4)));
        Assert.Equal(0, (await Si("infer", "status-mlp", "--input", npy)).ExitCode);

        // The worker reports its warm models in its next heartbeat (every 200 ms here).
        CliRun json;
        var polls = 0;
        do
        {
            json = await Si("status", "--json");
            Assert.True(json.ExitCode == 0, json.ToString());
            Assert.True(json.Json().GetProperty("queue").TryGetProperty("queued", out _));
        }
        while (!HoldsWarm(json.Json(), "status-mlp") && ++polls < 200 && await Pause());

        Assert.True(HoldsWarm(json.Json(), "status-mlp"), json.Stdout);

        var table = await Si("status");
        Assert.Contains("workers", table.Stdout, StringComparison.Ordinal);
        Assert.Contains("status-mlp", table.Stdout, StringComparison.Ordinal);
        // The scale-up from zero that started the worker is among the decisions shown.
        Assert.Contains("recent scaling decisions", table.Stdout, StringComparison.Ordinal);

        var watch = await Si("status", "--watch", "--count", "2", "--interval", "0.1", "--json");
        Assert.True(watch.ExitCode == 0, watch.ToString());
        var lines = watch.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.All(lines, line => Assert.True(JsonDocument.Parse(line).RootElement.TryGetProperty("queue", out _)));
    }

    [Fact]
    public async Task Bench_ModelWithFewRequests_ReportsLatencyAndThroughput()
    {
        await PushAsync("bench-mlp");

        var run = await Si("bench", "bench-mlp", "--requests", "24", "--concurrency", "4", "--json");

        Assert.True(run.ExitCode == 0, run.ToString());
        var result = run.Json();
        Assert.Equal(24, result.GetProperty("requests").GetInt32());
        Assert.Equal(24, result.GetProperty("succeeded").GetInt32());
        Assert.Equal(24, result.GetProperty("status_codes").GetProperty("200").GetInt32());
        var latency = result.GetProperty("latency_ms");
        Assert.True(latency.GetProperty("p50").GetDouble() > 0);
        Assert.True(latency.GetProperty("p50").GetDouble() <= latency.GetProperty("p90").GetDouble());
        Assert.True(latency.GetProperty("p90").GetDouble() <= latency.GetProperty("p99").GetDouble());
        Assert.True(latency.GetProperty("p99").GetDouble() <= latency.GetProperty("max").GetDouble());
        Assert.True(result.GetProperty("throughput_rps").GetDouble() > 0);

        var table = await Si("bench", host.Url.TrimEnd('/') + "/v2/health/live", "-n", "5", "-c", "2");
        Assert.True(table.ExitCode == 0, table.ToString());
        Assert.Contains("P99 MS", table.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bench_FailingRequests_ExitFailedAfterTheReport()
    {
        var run = await Si("bench", host.Url.TrimEnd('/') + "/jobs/nope", "-n", "3", "-c", "1", "--json");

        Assert.Equal(ExitCodes.Failed, run.ExitCode);
        Assert.Equal(3, run.Json().GetProperty("failed").GetInt32());
        AssertOneLine(run.Stderr, "3 of 3 requests failed (first: 404");
    }

    /// <summary>The real process, stdout and stderr redirected as in a script: no escape codes, no progress bar
    /// lines in stdout, and the JSON parses.</summary>
    [Fact]
    public async Task Process_RedirectedOutput_HasNoEscapeCodesAndParsesAsJson()
    {
        var environment = new Dictionary<string, string> { ["SI_URL"] = host.Url };
        var timeout = TimeSpan.FromMinutes(2);
        var push = await CliRunner.RunProcessAsync(CliRunner.SiDll, ["models", "push", "proc-mlp", host.MlpFile, "--store", host.Store, "--json"], timeout, environment);
        var bench = await CliRunner.RunProcessAsync(CliRunner.SiDll, ["bench", "proc-mlp", "-n", "8", "-c", "2", "--json"], timeout, environment);
        var status = await CliRunner.RunProcessAsync(CliRunner.SiDll, ["status"], timeout, environment);
        var failed = await CliRunner.RunProcessAsync(CliRunner.SiDll, ["infer", "proc-missing", "--input", host.MlpFile + ".json"], timeout, environment);

        foreach (var run in new[] { push, bench, status })
        {
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.DoesNotContain('\u001b', run.Stdout);
            Assert.DoesNotContain('\u001b', run.Stderr);
            Assert.Equal("", run.Stderr);
        }

        Assert.Equal("proc-mlp", push.Json().GetProperty("name").GetString());
        Assert.Equal(8, bench.Json().GetProperty("succeeded").GetInt32());
        Assert.Contains("workers", status.Stdout, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, failed.ExitCode);
        AssertOneLine(failed.Stderr, "cannot read");
    }

    private static bool HoldsWarm(JsonElement status, string model) =>
        status.GetProperty("workers").EnumerateArray().Any(w => w.GetProperty("warm_models").EnumerateArray().Any(m => m.GetProperty("model").GetString() == model));

    private static async Task<bool> Pause()
    {
        await Task.Delay(100);
        return true;
    }

    private async Task PushAsync(string name)
    {
        var run = await Si("models", "push", name, host.MlpFile, "--version", "1", "--store", host.Store);
        Assert.True(run.ExitCode == 0, run.ToString());
    }

    private Task<CliRun> Si(params string[] args) => CliRunner.RunAsync([.. args, "--url", host.Url]);

    private static void AssertOneLine(string stderr, string expected)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got: {stderr}");
        Assert.StartsWith("si: ", lines[0], StringComparison.Ordinal);
        Assert.Contains(expected, lines[0], StringComparison.Ordinal);
    }

    private static string Compact(JsonElement element) => JsonSerializer.Serialize(element);

    private static float[] Reference(string model, float[] rows, int count)
    {
        using var session = new InferenceSession(model);
        using var input = OrtValue.CreateTensorValueFromMemory(rows, [count, 4]);
        using var outputs = session.Run(new RunOptions(), ["input"], [input], ["output"]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }
}
