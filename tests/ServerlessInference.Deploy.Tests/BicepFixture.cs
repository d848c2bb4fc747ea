using System.Text.Json.Nodes;

namespace ServerlessInference.Deploy.Tests;

/// <summary>Compiles <c>bicep/main.bicep</c> once per test run with the real Bicep CLI, offline, and predicts the
/// deployment (<c>bicep snapshot</c>) for three parameter sets, one per allowed worker workload profile: the defaults
/// (T4 GPU, a deploying user), A100, and CPU only with non-default queue settings and an existing worker app.</summary>
public sealed class BicepFixture : IAsyncLifetime
{
    public const string DeployingUserObjectId = "33333333-3333-3333-3333-33333333beef";

    private string? _workDir;

    public BicepRun Build { get; private set; } = null!;

    /// <summary>The compiled ARM template (its text, and parsed).</summary>
    public string CompiledText => _compiledText ?? throw new InvalidOperationException($"the template did not compile: {Build}");

    public JsonObject Compiled => JsonNode.Parse(CompiledText)!.AsObject();

    private string? _compiledText;

    public IReadOnlyList<BicepRun> SnapshotRuns { get; private set; } = [];

    /// <summary>Defaults: <c>Consumption-GPU-NC8as-T4</c>, a deploying user, queue lock 30 s, 5 deliveries.</summary>
    public DeploymentSnapshot Gpu => _gpu ?? throw Failed(0);

    /// <summary><c>Consumption-GPU-NC24-A100</c>, otherwise defaults without a deploying user.</summary>
    public DeploymentSnapshot A100 => _a100 ?? throw Failed(1);

    /// <summary><c>Consumption</c> (CPU only), no deploying user, max 2 replicas, lock 90 s, 7 deliveries, app exists.</summary>
    public DeploymentSnapshot Cpu => _cpu ?? throw Failed(2);

    private DeploymentSnapshot? _gpu;
    private DeploymentSnapshot? _a100;
    private DeploymentSnapshot? _cpu;

    public async Task InitializeAsync()
    {
        _workDir = Directory.CreateTempSubdirectory("si-bicep-").FullName;
        var compiledPath = Path.Combine(_workDir, "main.json");
        var mainFromWorkDir = Path.GetRelativePath(_workDir, RepositoryPaths.MainBicep).Replace('\\', '/');

        var gpuParams = Path.Combine(_workDir, "gpu.bicepparam");
        await File.WriteAllTextAsync(gpuParams, $"""
            using '{mainFromWorkDir}'
            param environmentName = 'ci-gpu'
            param location = 'swedencentral'
            param principalId = '{DeployingUserObjectId}'
            """);
        var a100Params = Path.Combine(_workDir, "a100.bicepparam");
        await File.WriteAllTextAsync(a100Params, $"""
            using '{mainFromWorkDir}'
            param environmentName = 'ci-a100'
            param location = 'westus3'
            param workerWorkloadProfile = 'Consumption-GPU-NC24-A100'
            """);
        var cpuParams = Path.Combine(_workDir, "cpu.bicepparam");
        await File.WriteAllTextAsync(cpuParams, $"""
            using '{mainFromWorkDir}'
            param environmentName = 'ci-cpu'
            param location = 'westeurope'
            param workerWorkloadProfile = 'Consumption'
            param workerMaxReplicas = 2
            param workerExists = true
            param queueLockDurationSeconds = 90
            param queueMaxDeliveryCount = 7
            """);

        // All at once: each process spends most of its time starting up.
        var build = BicepCli.RunAsync(RepositoryPaths.Root, "build", RepositoryPaths.MainBicep, "--outfile", compiledPath);
        string[] paramFiles = [gpuParams, a100Params, cpuParams];
        string[] locations = ["swedencentral", "westus3", "westeurope"];
        var snapshots = paramFiles.Select((file, i) => Snapshot(file, locations[i])).ToArray();
        await Task.WhenAll([build, .. snapshots]);

        Build = await build;
        if (Build.ExitCode == 0)
        {
            _compiledText = await File.ReadAllTextAsync(compiledPath);
        }

        SnapshotRuns = [.. snapshots.Select(s => s.Result)];
        var parsed = new DeploymentSnapshot?[paramFiles.Length];
        for (var i = 0; i < paramFiles.Length; i++)
        {
            if (SnapshotRuns[i].ExitCode == 0)
            {
                parsed[i] = DeploymentSnapshot.Parse(await File.ReadAllTextAsync(Path.ChangeExtension(paramFiles[i], ".snapshot.json")));
            }
        }

        (_gpu, _a100, _cpu) = (parsed[0], parsed[1], parsed[2]);
    }

    private InvalidOperationException Failed(int snapshot) => new($"the deployment snapshot failed: {SnapshotRuns[snapshot]}");

    public Task DisposeAsync()
    {
        if (_workDir is not null && Directory.Exists(_workDir))
        {
            Directory.Delete(_workDir, recursive: true);
        }

        return Task.CompletedTask;
    }

    private Task<BicepRun> Snapshot(string paramsFile, string location) => BicepCli.RunAsync(
        _workDir!,
        "snapshot", paramsFile,
        "--subscription-id", DeploymentSnapshot.SubscriptionId,
        "--tenant-id", DeploymentSnapshot.TenantId,
        "--location", location,
        "--deployment-name", "main");
}

[CollectionDefinition(Name)]
public sealed class BicepCollection : ICollectionFixture<BicepFixture>
{
    public const string Name = "Bicep";
}
