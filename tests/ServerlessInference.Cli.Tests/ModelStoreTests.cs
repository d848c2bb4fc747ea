using ServerlessInference.Azure.Models;
using ServerlessInference.Testing.Services;

namespace ServerlessInference.Cli.Tests;

/// <summary><c>si models</c> on the Blob model store (a real Azurite), chosen by option or by the DevHost's settings
/// in the environment; and the progress bar of a push, drawn on stderr only.</summary>
[Trait("Category", "Integration")]
public sealed class ModelStoreTests(AzuriteServer azurite) : IClassFixture<AzuriteServer>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("si-store-tests").FullName;

    [Fact]
    public async Task Blob_PushLsRm_ByOption_ThroughTheBlobModelStore()
    {
        var model = await ModelFileAsync();
        var container = "si" + Guid.NewGuid().ToString("N")[..20];
        string[] store = ["--blob-connection-string", azurite.ConnectionString, "--container", container];

        var push = await CliRunner.RunAsync(["models", "push", "blob-mlp", model, "--json", .. store]);
        Assert.True(push.ExitCode == 0, push.ToString());

        // Read back through the store the workers use: the manifest and weights are there, with the pushed sha256.
        var blob = new BlobModelStore(new BlobModelStoreOptions { ConnectionString = azurite.ConnectionString, Container = container });
        var manifest = await blob.GetManifestAsync("blob-mlp", "1", default);
        Assert.NotNull(manifest);
        Assert.Equal(push.Json().GetProperty("sha256").GetString(), manifest.Sha256);

        var list = await CliRunner.RunAsync(["models", "ls", .. store]);
        Assert.Contains("blob-mlp", list.Stdout, StringComparison.Ordinal);

        var rm = await CliRunner.RunAsync(["models", "rm", "blob-mlp", .. store]);
        Assert.True(rm.ExitCode == 0, rm.ToString());
        Assert.Null(await blob.GetManifestAsync("blob-mlp", null, default));
    }

    [Fact]
    public async Task Blob_ChosenByTheDevHostsEnvironmentSettings()
    {
        var model = await ModelFileAsync();
        var container = "si" + Guid.NewGuid().ToString("N")[..20];
        var environment = new Dictionary<string, string>
        {
            ["Inference__ModelStore__Provider"] = "Blob",
            ["Inference__ModelStore__Blob__ConnectionString"] = azurite.ConnectionString,
            ["Inference__ModelStore__Blob__Container"] = container,
        };

        var push = await CliRunner.RunAsync(["models", "push", "env-mlp", model, "--version", "7"], environment);
        var list = await CliRunner.RunAsync(["models", "ls", "--json"], environment);

        Assert.True(push.ExitCode == 0, push.ToString());
        Assert.Contains($"blob container '{container}'", push.Stdout, StringComparison.Ordinal);
        Assert.Equal("7", Assert.Single(list.Json().GetProperty("models").EnumerateArray()).GetProperty("version").GetString());
    }

    [Fact]
    public async Task Blob_BadSettings_UsageErrorNamingTheOption()
    {
        var run = await CliRunner.RunAsync(["models", "ls", "--blob-connection-string", "not a connection string"]);

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains("--blob-connection-string", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Push_StderrATerminal_ProgressOnStderr_StdoutStillPlainJson()
    {
        var model = await ModelFileAsync();

        var push = await CliRunner.RunAsync(["models", "push", "progress-mlp", model, "--store", Path.Combine(_dir, "models"), "--json"], null, errorIsTerminal: true);

        Assert.True(push.ExitCode == 0, push.ToString());
        Assert.Contains("progress-mlp/1", push.Stderr, StringComparison.Ordinal);
        Assert.Contains("100%", push.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain('\u001b', push.Stdout);
        Assert.Equal("progress-mlp", push.Json().GetProperty("name").GetString());
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private async Task<string> ModelFileAsync()
    {
        var path = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".onnx");
        await File.WriteAllBytesAsync(path, Onnx.Demo.MlpBenchModel.Build([4, 8, 3], seed: 5));
        return path;
    }
}
