using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.Cli.Tests;

/// <summary><c>si</c> against a DevHost with API keys whose workers never start: keys from the option and from
/// <c>SI_API_KEY</c>, and jobs that stay queued (wait times out, cancel succeeds, wait then reports the cancellation).</summary>
[Collection(DevHostCollection.Name)]
public sealed class KeyedHostTests(DevHostFixture host)
{
    [Fact]
    public async Task Status_KeyFromOptionOrEnvironment_NoneIsRefused()
    {
        var none = await CliRunner.RunAsync("status", "--url", host.KeyedUrl);
        var tenant = await CliRunner.RunAsync("status", "--url", host.KeyedUrl, "--api-key", TestKeys.Acme);
        var admin = await CliRunner.RunAsync("status", "--url", host.KeyedUrl, "--api-key", TestKeys.Admin, "--json");
        var fromEnvironment = await CliRunner.RunAsync(["status", "--json"], new Dictionary<string, string> { ["SI_URL"] = host.KeyedUrl, ["SI_API_KEY"] = TestKeys.Admin });

        Assert.Equal(ExitCodes.Refused, none.ExitCode);
        Assert.StartsWith("si: 401 Unauthorized: missing API key", none.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Refused, tenant.ExitCode);
        Assert.StartsWith("si: 403 Forbidden", tenant.Stderr, StringComparison.Ordinal);
        Assert.True(admin.ExitCode == 0, admin.ToString());
        Assert.True(fromEnvironment.ExitCode == 0, fromEnvironment.ToString());
        Assert.True(fromEnvironment.Json().TryGetProperty("queue", out _));
    }

    [Fact]
    public async Task Jobs_QueuedForever_WaitTimesOut_CancelThenWaitReportsCancelled()
    {
        var push = await CliRunner.RunAsync("models", "push", "keyed-mlp", host.MlpFile, "--version", "1", "--store", host.Store);
        Assert.True(push.ExitCode == 0, push.ToString());
        var npy = Path.Combine(host.Root, "keyed.npy");
        await File.WriteAllBytesAsync(npy, NpyWriter.Write("<f4", [1, 4], NpyWriter.Floats(1, 2, 3, 4)));
        string[] keyed = ["--url", host.KeyedUrl, "--api-key", TestKeys.Acme];

        var accepted = await CliRunner.RunAsync(["infer", "keyed-mlp", "--input", npy, "--async", "--json", .. keyed]);
        Assert.True(accepted.ExitCode == 0, accepted.ToString());
        var id = accepted.Json().GetProperty("id").GetString()!;
        Assert.Equal("queued", accepted.Json().GetProperty("status").GetString());

        var timedOut = await CliRunner.RunAsync(["jobs", "wait", id, "--timeout", "0.3", "--interval", "0.1", .. keyed]);
        Assert.Equal(ExitCodes.Timeout, timedOut.ExitCode);
        Assert.Equal($"si: job {id} is still queued after 0.3 s\n", timedOut.Stderr);

        // Another tenant's key sees no such job.
        var other = await CliRunner.RunAsync("jobs", "get", id, "--url", host.KeyedUrl, "--api-key", TestKeys.Beta);
        Assert.Equal(ExitCodes.Refused, other.ExitCode);

        var cancelled = await CliRunner.RunAsync(["jobs", "cancel", id, "--json", .. keyed]);
        Assert.True(cancelled.ExitCode == 0, cancelled.ToString());
        Assert.Equal("cancelled", cancelled.Json().GetProperty("status").GetString());

        var waited = await CliRunner.RunAsync(["jobs", "wait", id, "--json", .. keyed]);
        Assert.Equal(ExitCodes.Failed, waited.ExitCode);
        Assert.Equal("cancelled", waited.Json().GetProperty("status").GetString());
        Assert.StartsWith($"si: job {id} cancelled", waited.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StatusWatch_OnATerminal_LiveDisplayRedrawsUntilTheCount()
    {
        var stdout = new StringWriter();
        var console = new CliConsole(stdout, new StringWriter(), outputIsTerminal: true, errorIsTerminal: true, _ => null);

        var code = await SiApp.RunAsync(["status", "--watch", "--count", "2", "--interval", "0.1", "--url", host.KeyedUrl, "--api-key", TestKeys.Admin], console, CancellationToken.None);

        Assert.Equal(0, code);
        Assert.Contains("workers", stdout.ToString(), StringComparison.Ordinal);
        Assert.Contains("queued", stdout.ToString(), StringComparison.Ordinal);
    }
}
