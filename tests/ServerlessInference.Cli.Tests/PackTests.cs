namespace ServerlessInference.Cli.Tests;

/// <summary>The repository's own package installs as a .NET tool and runs: <c>dotnet pack</c> of the built CLI, then
/// <c>dotnet tool install --tool-path</c> from that folder, as the README says.</summary>
[Trait("Category", "Pack")]
public sealed class PackTests : IDisposable
{
#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "si-pack-tests", Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task PackAndToolInstall_InstalledSiPushesAndListsAModel()
    {
        var project = Path.Combine(RepositoryRoot(), "src", "ServerlessInference.Cli", "ServerlessInference.Cli.csproj");
        var packages = Path.Combine(_dir, "nupkg");
        var tools = Path.Combine(_dir, "tools");
        var timeout = TimeSpan.FromMinutes(4);

        var pack = await CliRunner.RunProcessAsync("dotnet", ["pack", project, "-c", Configuration, "--no-build", "-o", packages, "-v", "quiet"], timeout);
        Assert.True(pack.ExitCode == 0, pack.ToString());
        var package = Assert.Single(Directory.GetFiles(packages, "ServerlessInference.Cli.*.nupkg"));
        // The CUDA provider libraries and the demo weights stay out: the package is ONNX Runtime's CPU library and code.
        Assert.InRange(new FileInfo(package).Length, 1_000_000, 40_000_000);

        var install = await CliRunner.RunProcessAsync("dotnet", ["tool", "install", "--tool-path", tools, "--add-source", packages, "ServerlessInference.Cli"], timeout);
        Assert.True(install.ExitCode == 0, install.ToString());

        var si = Path.Combine(tools, "si");
        var model = Path.Combine(_dir, "mlp.onnx");
        await File.WriteAllBytesAsync(model, Onnx.Demo.MlpBenchModel.Build([4, 8, 3], seed: 3));
        var store = Path.Combine(_dir, "models");
        var push = await CliRunner.RunProcessAsync(si, ["models", "push", "packed", model, "--store", store, "--json"], timeout);
        var list = await CliRunner.RunProcessAsync(si, ["models", "ls", "--store", store], timeout);

        Assert.True(push.ExitCode == 0, push.ToString());
        Assert.Equal("packed", push.Json().GetProperty("name").GetString());
        Assert.Contains("packed", list.Stdout, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "ServerlessInference.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("ServerlessInference.sln not found above " + AppContext.BaseDirectory);
    }
}
