using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessInference.Security;
using ServerlessInference.Testing.Gateway;
using ServerlessInference.Testing.Services;

namespace ServerlessInference.DevHost.Tests;

/// <summary>The loopback rule at start-up, the management port and <c>/metrics</c> for admins, on the DevHost.</summary>
public sealed class LoopbackRuleTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "si-auth-tests", Guid.NewGuid().ToString("N"));

    [Theory]
    [InlineData("http://0.0.0.0:8080")]
    [InlineData("http://+:8080")]
    [InlineData("http://*:8080")]
    [InlineData("http://127.0.0.1:8081;http://10.1.2.3:8080")]
    public void Start_BeyondLoopbackWithoutKeys_FailsNamingAllowAnonymous(string urls)
    {
        using var host = Host(urls);

        var ex = Assert.ThrowsAny<Exception>(() => host.Server);

        Assert.Contains(AuthOptions.AllowAnonymousKey, ex.ToString());
        Assert.Contains("no API key exists", ex.ToString());
    }

    [Fact]
    public async Task Start_BeyondLoopbackWithAllowAnonymous_RunsOpenAndWarns()
    {
        var logs = new LogSink();
        using var host = Host("http://0.0.0.0:8080", logs, (AuthOptions.AllowAnonymousKey, "true"));

        using var client = host.CreateClient();
        var response = await client.GetAsync(new Uri("/v2", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(logs.Lines, l => l.Level == LogLevel.Warning && l.Text.Contains(AuthOptions.AllowAnonymousKey, StringComparison.Ordinal) && l.Text.Contains("0.0.0.0:8080", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Start_OnLoopbackWithoutKeys_RunsOpenAndSaysSo()
    {
        var logs = new LogSink();
        using var host = Host("http://127.0.0.1:7071", logs);

        using var client = host.CreateClient();
        var response = await client.GetAsync(new Uri("/status", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(logs.Lines, l => l.Level == LogLevel.Information && l.Text.Contains("runs open", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Start_BeyondLoopbackWithKeys_StartsAndRequiresThem()
    {
        using var host = Host("http://0.0.0.0:8080", null, [.. TestKeys.Settings.Select(s => (s.Key, s.Value!))]);

        using var client = host.CreateClient();
        var anonymous = await client.GetAsync(new Uri("/v2", UriKind.Relative));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v2") { Headers = { { "Authorization", "Bearer " + TestKeys.Acme } } };
        var keyed = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal(HttpStatusCode.OK, keyed.StatusCode);
    }

    [Fact]
    public async Task Start_OnLoopbackWithKeys_RequiresThemThere_Too()
    {
        using var host = Host("http://127.0.0.1:7071", null, [.. TestKeys.Settings.Select(s => (s.Key, s.Value!))]);

        using var client = host.CreateClient();
        var anonymous = await client.GetAsync(new Uri("/v2/models/mlp-bench", UriKind.Relative));

        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }

    [Fact]
    public async Task ManagementUrl_StatusAndMetricsOnlyThere_WithoutAKey_AndNothingElse()
    {
        var (publicPort, managementPort) = (FreePort(), FreePort());
        using var host = Host($"http://127.0.0.1:{publicPort}", null, ("Inference:Auth:ManagementUrl", $"http://127.0.0.1:{managementPort}"));
        host.UseKestrel();
        host.StartServer();
        var addresses = host.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        Assert.Contains($"http://127.0.0.1:{managementPort}", addresses);
        using var client = new HttpClient();

        async Task<HttpStatusCode> Get(int port, string path) => (await client.GetAsync(new Uri($"http://127.0.0.1:{port}{path}"))).StatusCode;

        Assert.Equal(HttpStatusCode.NotFound, await Get(publicPort, "/status"));
        Assert.Equal(HttpStatusCode.NotFound, await Get(publicPort, "/metrics"));
        Assert.Equal(HttpStatusCode.OK, await Get(publicPort, "/v2"));
        Assert.Equal(HttpStatusCode.OK, await Get(managementPort, "/status"));
        Assert.Equal(HttpStatusCode.OK, await Get(managementPort, "/metrics"));
        Assert.Equal(HttpStatusCode.OK, await Get(managementPort, "/v2/health/live"));
        Assert.Equal(HttpStatusCode.NotFound, await Get(managementPort, "/v2"));
        Assert.Equal(HttpStatusCode.NotFound, await Get(managementPort, "/jobs/x"));
    }

    private DevHostFactory Host(string urls, LogSink? logs = null, params (string Key, string Value)[] settings)
    {
        var all = new Dictionary<string, string?> { ["urls"] = urls, ["Inference:DemoModels:Seed"] = "false" };
        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        return new DevHostFactory(_root, all, logs);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
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
}

/// <summary><c>/metrics</c> needs an admin key when the host has keys and no management port.</summary>
[Collection(DevHostCollection.Name)]
public sealed class MetricsAccessTests(DevHostFixture fixture)
{
    [Fact]
    public async Task Metrics_WithKeys_AdminOnly()
    {
        using var client = fixture.Keyed.CreateClient();

        async Task<HttpStatusCode> Get(string? key)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
            if (key is not null)
            {
                request.Headers.Add("Authorization", "Bearer " + key);
            }

            return (await client.SendAsync(request)).StatusCode;
        }

        Assert.Equal(HttpStatusCode.Unauthorized, await Get(null));
        Assert.Equal(HttpStatusCode.Forbidden, await Get(TestKeys.Acme));
        Assert.Equal(HttpStatusCode.OK, await Get(TestKeys.Admin));
    }
}

/// <summary><c>keys create|list|revoke</c> against a real redis-server, then the keys it made at a gateway's store.</summary>
public sealed class KeysCommandTests : IAsyncLifetime
{
    private readonly RedisServer _redis = new();
    private readonly string _prefix = $"t{Guid.NewGuid():N}:";

    public Task InitializeAsync() => ((IAsyncLifetime)_redis).InitializeAsync();

    public Task DisposeAsync() => _redis.DisposeAsync().AsTask();

    [Fact]
    public async Task Keys_CreateListRevoke_AgainstRedis()
    {
        var (code, output, _) = await RunAsync("create", "--tenant", "acme", "--admin", "--rps", "5", "--max-concurrent-jobs", "3");
        Assert.Equal(0, code);
        var key = output.TrimEnd().Split('\n')[^1].Trim();
        var id = ApiKeys.IdOf(key);
        Assert.NotNull(id);
        Assert.Contains($"Created key {id} for tenant acme (admin) in Redis", output);

        var store = Store();
        var record = await store.GetAsync(id, default);
        Assert.NotNull(record);
        Assert.True(ApiKeys.Matches(key, record));
        Assert.Equal(("acme", true, 5d, 3), (record.Tenant, record.Admin, record.RequestsPerSecond!.Value, record.MaxConcurrentJobs!.Value));

        var (listCode, list, _) = await RunAsync("list");
        Assert.Equal(0, listCode);
        Assert.Contains("1 key(s) in Redis", list);
        Assert.Contains(id, list);
        Assert.DoesNotContain(key, list);

        var (revokeCode, revoked, _) = await RunAsync("revoke", id);
        var (againCode, _, again) = await RunAsync("revoke", id);
        Assert.Equal(0, revokeCode);
        Assert.Contains($"Revoked key {id}", revoked);
        Assert.Equal(1, againCode);
        Assert.Contains($"no key {id}", again);
        Assert.Null(await store.GetAsync(id, default));
    }

    [Fact]
    public async Task Keys_CreateWithoutRedis_PrintsTheSettingsThatHoldTheHash()
    {
        var output = new StringWriter();
        var code = await KeysCommand.RunAsync(["keys", "create", "--tenant", "solo"], output, new StringWriter());

        var lines = output.ToString().TrimEnd().Split('\n').Select(l => l.Trim()).ToList();
        var key = lines[^1];
        var id = ApiKeys.IdOf(key);
        Assert.Equal(0, code);
        Assert.Contains($"Inference:Auth:Keys:{id}:Sha256={ApiKeys.Hash(key)}", lines);
        Assert.Contains($"Inference:Auth:Keys:{id}:Tenant=solo", lines);
    }

    [Theory]
    [InlineData("create")]
    [InlineData("create", "--tenant", "x", "--rps", "fast")]
    [InlineData("delete")]
    public async Task Keys_BadArguments_Exit2WithUsage(params string[] args)
    {
        var error = new StringWriter();

        var code = await KeysCommand.RunAsync(["keys", .. args], new StringWriter(), error);

        Assert.Equal(2, code);
        Assert.Contains("usage: keys create", error.ToString());
    }

    private IApiKeyStore Store() => new Redis.RedisApiKeyStore(
        Redis.RedisServiceCollectionExtensions.Connect(new Redis.RedisOptions { ConnectionString = _redis.ConnectionString }),
        Microsoft.Extensions.Options.Options.Create(new Redis.RedisOptions { ConnectionString = _redis.ConnectionString, KeyPrefix = _prefix }));

    private async Task<(int Code, string Output, string Error)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await KeysCommand.RunAsync(
            ["keys", .. args, "--profile", "services", $"--Inference:Redis:ConnectionString={_redis.ConnectionString}", $"--Inference:Redis:KeyPrefix={_prefix}"],
            output, error);
        return (code, output.ToString(), error.ToString());
    }
}

/// <summary>Collects log lines of a host.</summary>
public sealed class LogSink : ILoggerProvider
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<(LogLevel Level, string Text)> _lines = new();

    public IReadOnlyList<(LogLevel Level, string Text)> Lines => [.. _lines];

    public ILogger CreateLogger(string categoryName) => new Logger(_lines);

    public void Dispose()
    {
    }

    private sealed class Logger(System.Collections.Concurrent.ConcurrentQueue<(LogLevel, string)> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue((logLevel, formatter(state, exception)));
    }
}
