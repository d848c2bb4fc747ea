using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using ServerlessInference.Models;
using ServerlessInference.Testing.Gateway;
using Xunit.Abstractions;

namespace ServerlessInference.DevHost.Tests;

/// <summary><c>/dashboard</c> in a real browser (Debian's chromium through Playwright) against a DevHost on a free loopback
/// port: load goes in, the page must draw it, and it must log no console error.</summary>
/// <remarks>The queue stays non-empty deterministically: the engine is gated (<see cref="GatedEngine"/>), so the worker's
/// first batch holds until the test opens the gate, and the jobs behind it wait in the queue. A screenshot is saved under
/// the test project's <c>TestResults/</c> (git-ignored); <c>SI_DASHBOARD_SCREENSHOT=PATH</c> also writes it there (how
/// <c>docs/dashboard.png</c> is made, see the README). The class runs alone (<see cref="DashboardBrowserCollection"/>):
/// OpenTelemetry's Prometheus exporter listens to every meter named <c>ServerlessInference</c> in the process, so another
/// DevHost alive in this test process at the same time takes this host's measurements off its <c>/metrics</c>.</remarks>
[Trait("Category", "Browser")]
[Collection(DashboardBrowserCollection.Name)]
public sealed class DashboardBrowserTests(ChromiumBrowser chromium, ITestOutputHelper output) : IClassFixture<ChromiumBrowser>, IDisposable
{
    private const int Jobs = 12;
    private const float WaitTimeoutMs = 60_000;
    private readonly string _root = Path.Combine(Path.GetTempPath(), "si-dashboard-tests", Guid.NewGuid().ToString("N"));

    [SkippableFact]
    public async Task Dashboard_UnderLoad_DrawsQueueWorkersDecisionsAndLatenciesWithoutConsoleErrors()
    {
        var browser = chromium.Require();
        await using var host = new DashboardHost(_root, new Dictionary<string, string?>
        {
            ["Inference:Scaling:MinReplicas"] = "1",
            ["Inference:Scaling:MaxReplicas"] = "2",
            ["Inference:Scaling:TargetJobsPerWorker"] = "4",
            ["Inference:Worker:MaxBatchSize"] = "2",
            ["Inference:Worker:HeartbeatInterval"] = "00:00:00.500",
        });
        var address = host.Start();
        using var client = new HttpClient { BaseAddress = address };
        await using var context = await browser.NewContextAsync(new BrowserNewContextOptions
        {
            ViewportSize = new ViewportSize { Width = 1280, Height = 900 },
            ColorScheme = ColorScheme.Light,
        });
        var page = await context.NewPageAsync();
        var errors = WatchErrors(page);

        await page.GotoAsync(new Uri(address, "/dashboard?interval=1").ToString());
        await WaitAsync(page, "() => Number(document.body.dataset.polls) >= 2");

        // A generation (tokens/s, time to first token), then jobs that the gated engine holds: the queue fills.
        await CompleteAsync(client);
        host.Engine.Close();
        var ids = new List<string>();
        for (var i = 0; i < Jobs; i++)
        {
            ids.Add(await SubmitAsync(client));
        }

        // Two workers take at most two jobs each (MaxBatchSize) and hold them: the rest stay queued until the gate opens.
        await WaitAsync(page, $"() => Number(document.querySelector('svg[data-chart=queue-depth] path[data-series=queued]')?.dataset.last) >= {Jobs / 2}");
        var held = await page.EvaluateAsync<int>("() => Number(document.body.dataset.polls)");
        await WaitAsync(page, $"() => Number(document.body.dataset.polls) >= {held + 3}");
        await WaitAsync(page, "() => document.querySelectorAll('#workers tbody tr').length >= 1");
        await WaitAsync(page, "() => document.querySelectorAll('#decisions tbody tr').length >= 1");
        Assert.Equal("false", await page.GetAttributeAsync("svg[data-chart=queue-depth] path[data-series=queued]", "data-empty"));
        var workerRow = await page.InnerTextAsync("#workers tbody tr");
        Assert.Contains("CPU", workerRow, StringComparison.Ordinal);
        Assert.Contains("running", workerRow, StringComparison.Ordinal);
        Assert.Matches(@"\d+\.\d s", workerRow); // heartbeat age
        var decision = await page.InnerTextAsync("#decisions tbody tr");
        Assert.Matches(@"\d → \d", decision);
        var queuedLabel = await page.GetAttributeAsync("svg[data-chart=queue-depth]", "aria-label");
        Assert.Matches(@"queued ([6-9]|1[0-2])\b", queuedLabel);

        // Let the work through: the outcomes, batch sizes and latencies follow.
        host.Engine.Open();
        foreach (var id in ids)
        {
            await WaitForJobAsync(client, id);
        }

        await WaitAsync(page, "() => Number(document.querySelector('svg[data-chart=jobs-per-second] path[data-series=succeeded]')?.dataset.max) > 0");
        // 12 jobs in batches of at most 2 (MaxBatchSize): at least 6 engine calls, all of size 1 or 2.
        await WaitAsync(page, $"() => [...document.querySelectorAll('svg[data-chart=batch-size] rect')].reduce((n, r) => n + Number(r.dataset.count), 0) >= {Jobs / 2}");
        var sizes = await page.EvalOnSelectorAllAsync<string[]>("svg[data-chart=batch-size] rect", "rects => rects.filter(r => Number(r.dataset.count) > 0).map(r => r.dataset.bucket)");
        Assert.Subset(new HashSet<string> { "1", "2" }, sizes.ToHashSet());
        await WaitAsync(page, "() => document.querySelector('svg[data-chart=compute-time] path[data-series=\"mlp-bench p50\"]')?.dataset.empty === 'false'");
        await WaitAsync(page, "() => document.querySelector('svg[data-chart=queue-time] path[data-series=\"mlp-bench p99\"]')?.dataset.empty === 'false'");
        await WaitAsync(page, "() => Number(document.querySelector('svg[data-chart=tokens-per-second] path[data-series=\"tiny-lm\"]')?.dataset.max) > 0");
        await WaitAsync(page, "() => document.querySelector('svg[data-chart=time-to-first-token] path[data-series=\"tiny-lm p50\"]')?.dataset.empty === 'false'");
        await WaitAsync(page, "() => document.querySelector('#workers tbody tr')?.innerText.includes('mlp-bench@')");
        var models = await page.InnerTextAsync("#models");
        Assert.Contains("mlp-bench", models, StringComparison.Ordinal);
        Assert.Contains("tiny-lm", models, StringComparison.Ordinal);
        Assert.True(await page.IsHiddenAsync("#alert"), await page.InnerTextAsync("#alert"));

        // A few more samples, so the picture shows the queue drained and the rates falling back.
        var polls = await page.EvaluateAsync<int>("() => Number(document.body.dataset.polls)");
        await WaitAsync(page, $"() => Number(document.body.dataset.polls) >= {polls + 4}");
        await SaveScreenshotAsync(page);
        Assert.True(errors.Count == 0, "the page logged errors:\n" + string.Join("\n", errors));
    }

    [SkippableFact]
    public async Task Dashboard_WithKeys_Says401Then403ThenDrawsWithTheAdminKeyKeptForTheSession()
    {
        var browser = chromium.Require();
        await using var host = new DashboardHost(_root, TestKeys.Settings);
        var address = host.Start();
        await using var context = await browser.NewContextAsync();
        var page = await context.NewPageAsync();
        var pageErrors = new List<string>();
        page.PageError += (_, error) => pageErrors.Add(error);

        await page.GotoAsync(new Uri(address, "/dashboard?interval=1").ToString());
        await WaitAsync(page, "() => document.getElementById('alert').textContent.includes('401')");
        Assert.Contains("enter an admin key", await page.InnerTextAsync("#alert"), StringComparison.OrdinalIgnoreCase);

        await page.FillAsync("#key", TestKeys.Acme);
        await page.ClickAsync("#key-form button[type=submit]");
        await WaitAsync(page, "() => document.getElementById('alert').textContent.includes('403')");
        Assert.Contains("not an admin key", await page.InnerTextAsync("#alert"), StringComparison.Ordinal);

        await page.FillAsync("#key", TestKeys.Admin);
        await page.ClickAsync("#key-form button[type=submit]");
        await WaitAsync(page, "() => document.getElementById('alert').hidden && document.querySelector('svg[data-chart=queue-depth]') !== null");

        // The key lives in sessionStorage: a reload draws again without asking.
        Assert.Equal(TestKeys.Admin, await page.EvaluateAsync<string>("() => sessionStorage.getItem('serverless-inference.dashboard.key')"));
        await page.ReloadAsync();
        await WaitAsync(page, "() => Number(document.body.dataset.polls) >= 2 && document.getElementById('alert').hidden && document.querySelector('svg[data-chart=queue-depth]') !== null");
        Assert.Equal(TestKeys.Admin, await page.InputValueAsync("#key"));
        Assert.Empty(pageErrors);
    }

    [SkippableFact]
    public async Task Dashboard_AsTheFunctionsAppServesIt_PassesTheFunctionKeyOnDrawsModelsGenericallyAndSaysMetricsAreMissing()
    {
        var browser = chromium.Require();
        await using var host = new DashboardHost(_root, new Dictionary<string, string?> { ["Inference:DemoModels:Seed"] = "false" });
        var address = host.Start();
        await using var context = await browser.NewContextAsync();
        var page = await context.NewPageAsync();
        var pageErrors = new List<string>();
        page.PageError += (_, error) => pageErrors.Add(error);
        var statusQueries = new List<string>();

        // What the Functions app answers: /status with a per-model section (another part of the platform may add one), and
        // no /metrics at all.
        await page.RouteAsync("**/status?*", route =>
        {
            lock (statusQueries)
            {
                statusQueries.Add(new Uri(route.Request.Url).Query);
            }

            return route.FulfillAsync(new RouteFulfillOptions
            {
                Status = 200,
                ContentType = "application/json",
                Body = """
                    {"queue": {"queued": 3, "in_flight": 1}, "workers": [], "scaling_decisions": [],
                     "models": [{"model": "resnet18", "queued": 3, "in_flight": 1, "workers_warm": 2, "loads": 4, "evictions": 1}]}
                    """,
            });
        });
        await page.RouteAsync("**/metrics?*", route => route.FulfillAsync(new RouteFulfillOptions { Status = 404, ContentType = "application/json", Body = """{"error": "not found"}""" }));

        await page.GotoAsync(new Uri(address, "/dashboard?code=function-key-1").ToString());
        await WaitAsync(page, "() => document.querySelector('#models table') !== null && !document.getElementById('note').hidden");

        Assert.Contains("serves no /metrics", await page.InnerTextAsync("#note"), StringComparison.Ordinal);
        var models = await page.InnerTextAsync("#models");
        Assert.Contains("workers warm", models, StringComparison.Ordinal);
        Assert.Contains("resnet18", models, StringComparison.Ordinal);
        Assert.Contains("evictions", models, StringComparison.Ordinal);
        Assert.True(await page.IsHiddenAsync("#chart-jobs"));
        Assert.Equal("3", await page.GetAttributeAsync("svg[data-chart=queue-depth] path[data-series=queued]", "data-last"));
        lock (statusQueries)
        {
            Assert.NotEmpty(statusQueries);
            Assert.All(statusQueries, q => Assert.Contains("code=function-key-1", q, StringComparison.Ordinal));
        }

        Assert.Empty(pageErrors);
    }

    [SkippableFact]
    public async Task Dashboard_PrometheusParsing_MatchesTheTextFormatAndHistogramQuantile()
    {
        var browser = chromium.Require();
        await using var host = new DashboardHost(_root, new Dictionary<string, string?> { ["Inference:DemoModels:Seed"] = "false" });
        var address = host.Start();
        await using var context = await browser.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync(new Uri(address, "/dashboard").ToString());

        var parsed = await page.EvaluateAsync<JsonElement>("""
            () => {
              const m = window.serverlessInferenceDashboard.parsePrometheus(
                '# HELP x help\n# TYPE x_total counter\nx_total{model="a\\"b",outcome="ok"} 3\nh_bucket{le="+Inf"} 7 1700000000\nnan NaN\n');
              return { label: m.get('x_total')[0].labels.model, value: m.get('x_total')[0].value,
                       inf: m.get('h_bucket')[0].labels.le, count: m.get('h_bucket')[0].value, nan: Number.isNaN(m.get('nan')[0].value) };
            }
            """);
        Assert.Equal("a\"b", parsed.GetProperty("label").GetString());
        Assert.Equal(3, parsed.GetProperty("value").GetDouble());
        Assert.Equal("+Inf", parsed.GetProperty("inf").GetString());
        Assert.Equal(7, parsed.GetProperty("count").GetDouble());
        Assert.True(parsed.GetProperty("nan").GetBoolean());

        // Prometheus' histogram_quantile: linear within the bucket; the +Inf bucket answers the highest finite bound.
        const string buckets = "[{ le: 0.1, count: 10 }, { le: 0.2, count: 30 }, { le: Infinity, count: 40 }]";
        Assert.Equal(0.15, await QuantileAsync(page, 0.5, buckets), 9);
        Assert.Equal(0.05, await QuantileAsync(page, 0.125, buckets), 9);
        Assert.Equal(0.2, await QuantileAsync(page, 0.99, buckets), 9);
        Assert.Null(await page.EvaluateAsync<double?>("() => window.serverlessInferenceDashboard.histogramQuantile(0.5, [{ le: 1, count: 0 }, { le: Infinity, count: 0 }])"));

        // A process that restarted (a bucket went down) counts from zero again.
        var increase = await page.EvaluateAsync<double[]>(
            "() => window.serverlessInferenceDashboard.bucketIncrease([{ le: 1, count: 2 }, { le: Infinity, count: 3 }], [{ le: 1, count: 5 }, { le: Infinity, count: 9 }]).map(b => b.count)");
        Assert.Equal([2d, 3d], increase);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static Task<double> QuantileAsync(IPage page, double q, string buckets) =>
        page.EvaluateAsync<double>($"() => window.serverlessInferenceDashboard.histogramQuantile({q.ToString(CultureInfo.InvariantCulture)}, {buckets})");

    private static List<string> WatchErrors(IPage page)
    {
        var errors = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Type is "error" or "warning")
            {
                lock (errors)
                {
                    errors.Add($"console.{message.Type}: {message.Text}");
                }
            }
        };
        page.PageError += (_, error) =>
        {
            lock (errors)
            {
                errors.Add("uncaught: " + error);
            }
        };
        return errors;
    }

    private static async Task WaitAsync(IPage page, string condition)
    {
        try
        {
            await page.WaitForFunctionAsync(condition, null, new PageWaitForFunctionOptions { Timeout = WaitTimeoutMs, PollingInterval = 100 });
        }
        catch (TimeoutException)
        {
            var alert = await page.InnerTextAsync("#alert");
            var body = await page.InnerTextAsync("main");
            Assert.Fail($"the page never showed: {condition}\nalert: {alert}\npage:\n{body}");
        }
    }

    private async Task SaveScreenshotAsync(IPage page)
    {
        var path = Path.Combine(TestResultsDirectory(), "dashboard", "dashboard.png");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        output.WriteLine($"screenshot: {path}");
        if (Environment.GetEnvironmentVariable("SI_DASHBOARD_SCREENSHOT") is { Length: > 0 } copy)
        {
            // A relative path is the repository's (dotnet test runs tests in their bin folder).
            var target = Path.GetFullPath(copy, Path.Combine(ProjectDirectory(), "..", ".."));
            File.Copy(path, target, overwrite: true);
            output.WriteLine($"screenshot copied to {target}");
        }
    }

    /// <summary><c>TestResults/</c> beside this test project (where <c>dotnet test</c> puts its results by default).</summary>
    private static string TestResultsDirectory() => Path.Combine(ProjectDirectory(), "TestResults");

    private static string ProjectDirectory()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "ServerlessInference.DevHost.Tests.csproj")))
            {
                return folder.FullName;
            }
        }

        throw new InvalidOperationException($"no ServerlessInference.DevHost.Tests.csproj above {AppContext.BaseDirectory}");
    }

    private static async Task CompleteAsync(HttpClient client)
    {
        using var content = new StringContent("""{"model":"tiny-lm","prompt":"the dashboard","max_tokens":12}""", Encoding.UTF8, "application/json");
        using var response = await client.PostAsync(new Uri("/v1/completions", UriKind.Relative), content);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
    }

    private static async Task<string> SubmitAsync(HttpClient client)
    {
        var data = string.Join(',', Enumerable.Range(0, 512).Select(i => (i % 7 * 0.1).ToString("0.0", CultureInfo.InvariantCulture)));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/models/mlp-bench/infer")
        {
            Content = new StringContent($$"""{"inputs":[{"name":"input","shape":[1,512],"datatype":"FP32","data":[{{data}}]}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("Prefer", "respond-async");
        using var response = await client.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
        return response.Headers.GetValues("X-Job-Id").Single();
    }

    private static async Task WaitForJobAsync(HttpClient client, string id)
    {
        for (var attempt = 0; attempt < 600; attempt++)
        {
            using var document = JsonDocument.Parse(await client.GetStringAsync(new Uri($"/jobs/{id}", UriKind.Relative)));
            var status = document.RootElement.GetProperty("status").GetString();
            if (status == "succeeded")
            {
                return;
            }

            Assert.True(status is "queued" or "running", $"job {id} is {status}: {document.RootElement}");
            await Task.Delay(100);
        }

        Assert.Fail($"job {id} did not finish in 60 s");
    }

    /// <summary>The DevHost on Kestrel at a free 127.0.0.1 port (the browser needs a real socket), its engine gated.</summary>
    private sealed class DashboardHost(string root, IReadOnlyDictionary<string, string?> settings) : WebApplicationFactory<Program>
    {
        public GatedEngine Engine => Services.GetRequiredService<GatedEngine>();

        /// <summary>Starts the host; returns its address.</summary>
        public Uri Start()
        {
            UseKestrel();
            StartServer();
            var address = Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
                .Single(a => a.StartsWith("http://127.0.0.1:", StringComparison.Ordinal));
            return new Uri(address);
        }

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseSetting("urls", "http://127.0.0.1:0"); // Kestrel picks a free port
            builder.UseSetting("Inference:ModelStore:Root", Path.Combine(root, "models"));
            builder.UseSetting("Inference:WarmPool:CacheDirectory", Path.Combine(root, "cache"));
            builder.UseSetting("Inference:Onnx:IntraOpThreads", "1");
            foreach (var (key, value) in settings)
            {
                builder.UseSetting(key, value);
            }

            builder.ConfigureTestServices(services =>
            {
                var engine = services.Single(d => d.ServiceType == typeof(IInferenceEngine));
                services.Remove(engine);
                services.AddSingleton(sp => new GatedEngine((IInferenceEngine)(engine.ImplementationFactory?.Invoke(sp)
                    ?? ActivatorUtilities.CreateInstance(sp, engine.ImplementationType!))));
                services.AddSingleton<IInferenceEngine>(sp => sp.GetRequiredService<GatedEngine>());
            });
        }
    }

    /// <summary>Wraps the real engine: while closed, every batch of a non-generation model waits for <see cref="Open"/>.</summary>
    private sealed class GatedEngine(IInferenceEngine inner) : IInferenceEngine
    {
        private volatile TaskCompletionSource _gate = Opened();

        public string ExecutionProvider => inner.ExecutionProvider;

        public void Close() => _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Open() => _gate.TrySetResult();

        public async ValueTask<ILoadedModel> LoadAsync(ModelManifest manifest, string weightsPath, CancellationToken cancellationToken)
        {
            var loaded = await inner.LoadAsync(manifest, weightsPath, cancellationToken);
            return loaded is Generation.ITextGenerationModel ? loaded : new GatedModel(loaded, this);
        }

        private static TaskCompletionSource Opened()
        {
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            gate.SetResult();
            return gate;
        }

        private sealed class GatedModel(ILoadedModel inner, GatedEngine engine) : ILoadedModel
        {
            public ModelManifest Manifest => inner.Manifest;

            public long SizeBytes => inner.SizeBytes;

            public async ValueTask<IReadOnlyList<BatchItemResult>> RunBatchAsync(IReadOnlyList<InferenceRequest> requests, CancellationToken cancellationToken)
            {
                await engine._gate.Task.WaitAsync(cancellationToken);
                return await inner.RunBatchAsync(requests, cancellationToken);
            }

            public void Dispose() => inner.Dispose();
        }
    }
}

/// <summary>Runs the browser tests after every other test of the assembly, with no other DevHost alive in the process.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DashboardBrowserCollection
{
    public const string Name = "dashboard-browser";
}
