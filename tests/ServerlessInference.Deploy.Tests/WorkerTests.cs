using System.Text.Json.Nodes;

namespace ServerlessInference.Deploy.Tests;

/// <summary>The worker Container App: on the GPU workload profile (or Consumption when CPU only), scaled from zero by
/// the scaler, pulling its image and reaching every service with its own identity.</summary>
[Collection(BicepCollection.Name)]
public sealed class WorkerTests(BicepFixture bicep)
{
    private const string PlaceholderImage = "mcr.microsoft.com/azuredocs/containerapps-helloworld:latest";

    [Theory]
    [InlineData("gpu", "Consumption-GPU-NC8as-T4", 8.0, "56Gi")]
    [InlineData("a100", "Consumption-GPU-NC24-A100", 24.0, "220Gi")]
    public void Worker_GpuProfile_RunsOnTheEnvironmentsGpuWorkloadProfile(string variant, string profileType, double cpu, string memory)
    {
        var snapshot = variant == "gpu" ? bicep.Gpu : bicep.A100;
        var profiles = WorkloadProfiles(snapshot);
        Assert.Equal([("Consumption", "Consumption"), ("gpu", profileType)], profiles);

        var worker = Worker(snapshot);
        Assert.Equal(DeploymentSnapshot.Id(snapshot.Single("Microsoft.App/managedEnvironments")), (string?)worker["properties"]!["environmentId"]);
        Assert.Equal("gpu", (string?)worker["properties"]!["workloadProfileName"]);
        var resources = Container(worker)["resources"]!;
        Assert.Equal(cpu, (double)resources["cpu"]!);
        Assert.Equal(memory, (string?)resources["memory"]);
        Assert.Equal("Auto", Env(worker)["Inference__Onnx__ExecutionProvider"]);
    }

    [Fact]
    public void Worker_CpuOnly_RunsOnConsumptionWithNoGpuProfile()
    {
        Assert.Equal([("Consumption", "Consumption")], WorkloadProfiles(bicep.Cpu));
        var worker = Worker(bicep.Cpu);
        Assert.Equal("Consumption", (string?)worker["properties"]!["workloadProfileName"]);
        var resources = Container(worker)["resources"]!;
        Assert.Equal(4.0, (double)resources["cpu"]!);
        Assert.Equal("8Gi", (string?)resources["memory"]);
        Assert.Equal("Cpu", Env(worker)["Inference__Onnx__ExecutionProvider"]);
    }

    [Theory]
    [InlineData("gpu", 4)]
    [InlineData("cpu", 2)]
    public void Worker_Scale_StartsAtZeroUpToMaxReplicasWhichTheScalerKnows(string variant, int maxReplicas)
    {
        var snapshot = variant == "gpu" ? bicep.Gpu : bicep.Cpu;
        var scale = Worker(snapshot)["properties"]!["template"]!["scale"]!;
        Assert.Equal(0, (int)scale["minReplicas"]!);
        Assert.Equal(maxReplicas, (int)scale["maxReplicas"]!);
        // No scale rule: the scaler (Functions timer) sets the replica count through ARM.
        Assert.Null(scale["rules"]);
        Assert.Null(Worker(snapshot)["properties"]!["configuration"]!["ingress"]);

        var settings = FunctionAppTests.AppSettings(snapshot);
        Assert.Equal("0", settings["Inference__Scaling__MinReplicas"]);
        Assert.Equal(maxReplicas.ToString(System.Globalization.CultureInfo.InvariantCulture), settings["Inference__Scaling__MaxReplicas"]);
    }

    [Fact]
    public void Worker_Image_PullsFromTheRegistryWithTheWorkerIdentity()
    {
        var worker = Worker(bicep.Gpu);
        var workerIdentity = IdentityId(bicep.Gpu, "id-worker-");
        Assert.Equal([workerIdentity], worker["identity"]!["userAssignedIdentities"]!.AsObject().Select(p => p.Key));

        var registry = Assert.Single(worker["properties"]!["configuration"]!["registries"]!.AsArray())!;
        Assert.Equal(workerIdentity, (string?)registry["identity"]);
        var registryId = DeploymentSnapshot.Id(bicep.Gpu.Single("Microsoft.ContainerRegistry/registries"));
        Assert.True(DeploymentSnapshot.IsReferenceTo((string?)registry["server"], registryId, "loginServer"), (string?)registry["server"]);
        Assert.Null(worker["properties"]!["configuration"]!["secrets"]);
    }

    [Fact]
    public void Worker_Image_IsThePlaceholderUntilTheAppExistsThenKeepsItsImage()
    {
        Assert.Equal(PlaceholderImage, (string?)Container(Worker(bicep.Gpu))["image"]);

        // On a re-provision (azd sets SERVICE_WORKER_RESOURCE_EXISTS) the image azd deployed is kept.
        var cpuWorker = Worker(bicep.Cpu);
        var image = (string?)Container(cpuWorker)["image"];
        Assert.StartsWith($"[reference('{DeploymentSnapshot.Id(cpuWorker)}', ", image, StringComparison.Ordinal);
        Assert.EndsWith(").template.containers[0].image]", image, StringComparison.Ordinal);
    }

    [Fact]
    public void Worker_Env_HasEveryInferenceSettingTheWorkerNeeds()
    {
        var snapshot = bicep.Gpu;
        var env = Env(Worker(snapshot));
        var identity = IdentityId(snapshot, "id-worker-");
        var storageId = DeploymentSnapshot.Id(snapshot.ModelStorage);
        var serviceBusId = DeploymentSnapshot.Id(snapshot.Single("Microsoft.ServiceBus/namespaces"));

        Assert.Equal("ServiceBus", env["Inference__Queue__Provider"]);
        Assert.Equal($"[split(split(reference('{serviceBusId}', '2024-01-01').serviceBusEndpoint, '//')[1], ':')[0]]", env["Inference__ServiceBus__FullyQualifiedNamespace"]);
        Assert.Equal("jobs", env["Inference__ServiceBus__QueueName"]);
        Assert.Equal("Redis", env["Inference__Results__Provider"]);
        Assert.Equal("Redis", env["Inference__Registry__Provider"]);
        Assert.Equal("EntraId", env["Inference__Redis__Authentication"]);
        Assert.True(DeploymentSnapshot.IsReferenceTo(env["Inference__Redis__EntraPrincipalId"], identity, "principalId"), env["Inference__Redis__EntraPrincipalId"]);
        Assert.Equal("Blob", env["Inference__ModelStore__Provider"]);
        Assert.True(DeploymentSnapshot.IsReferenceTo(env["Inference__ModelStore__Blob__ServiceUri"], storageId, "primaryEndpoints.blob"), env["Inference__ModelStore__Blob__ServiceUri"]);
        Assert.Equal("models", env["Inference__ModelStore__Blob__Container"]);
        Assert.Equal("http://+:8080", env["ASPNETCORE_URLS"]);
        Assert.Equal("00:01:00", env["Inference__WorkerHost__DrainTimeout"]);
        foreach (var clientIdSetting in new[]
        {
            "AZURE_CLIENT_ID",
            "Inference__ServiceBus__ManagedIdentityClientId",
            "Inference__ModelStore__Blob__ManagedIdentityClientId",
            "Inference__Redis__ManagedIdentityClientId",
        })
        {
            Assert.True(DeploymentSnapshot.IsReferenceTo(env[clientIdSetting], identity, "clientId"), $"{clientIdSetting} = {env[clientIdSetting]}");
        }

        // The worker never scales anything nor talks to the orchestrator.
        Assert.DoesNotContain(env.Keys, k => k.StartsWith("Inference__Orchestrator__", StringComparison.Ordinal));
    }

    [Fact]
    public void Worker_Drain_FitsInTheTerminationGracePeriod()
    {
        var worker = Worker(bicep.Gpu);
        var grace = (int)worker["properties"]!["template"]!["terminationGracePeriodSeconds"]!;
        var drain = TimeSpan.Parse(Env(worker)["Inference__WorkerHost__DrainTimeout"], System.Globalization.CultureInfo.InvariantCulture);
        // The host waits DrainTimeout + 5 s before it gives up on the batch (WorkerHostSetup).
        Assert.True(drain.TotalSeconds + 5 < grace, $"drain {drain} does not fit in a {grace} s grace period");
    }

    [Fact]
    public void Worker_Probes_CheckHealthzOnPort8080()
    {
        var probes = Container(Worker(bicep.Gpu))["probes"]!.AsArray();
        Assert.Equal(["Liveness", "Startup"], probes.Select(p => (string?)p!["type"]).Order());
        Assert.All(probes, p =>
        {
            Assert.Equal("/healthz", (string?)p!["httpGet"]!["path"]);
            Assert.Equal(8080, (int)p["httpGet"]!["port"]!);
        });
    }

    internal static JsonObject Worker(DeploymentSnapshot snapshot) => snapshot.Single("Microsoft.App/containerApps", "ca-worker-");

    internal static IReadOnlyDictionary<string, string> Env(JsonObject worker) =>
        DeploymentSnapshot.NameValues(Container(worker)["env"]!.AsArray());

    internal static string IdentityId(DeploymentSnapshot snapshot, string namePrefix) =>
        DeploymentSnapshot.Id(snapshot.Single("Microsoft.ManagedIdentity/userAssignedIdentities", namePrefix));

    private static JsonObject Container(JsonObject worker) =>
        Assert.Single(worker["properties"]!["template"]!["containers"]!.AsArray())!.AsObject();

    private static List<(string?, string?)> WorkloadProfiles(DeploymentSnapshot snapshot) =>
        [.. snapshot.Single("Microsoft.App/managedEnvironments")["properties"]!["workloadProfiles"]!.AsArray()
            .Select(p => ((string?)p!["name"], (string?)p["workloadProfileType"]))];
}
