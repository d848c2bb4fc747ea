using k8s;
using k8s.Models;
using YamlDotNet.Serialization;

namespace ServerlessInference.Kubernetes.Tests;

/// <summary>Reads <c>infra/k8s</c> the way the API server would (strict: an unknown or misspelt field fails) and checks
/// that the manifests agree with the code: the scaler's Role grants exactly what the orchestrator does, on the
/// Deployment it scales by default, and the workers outlast their drain.</summary>
public sealed class ManifestTests
{
    private static readonly string Folder = Path.Combine(RepositoryRoot(), "infra", "k8s");
    private static readonly IReadOnlyList<object> Objects = Directory.GetFiles(Folder, "*.yaml")
        .Where(f => Path.GetFileName(f) != "kustomization.yaml")
        .SelectMany(f => KubernetesYaml.LoadAllFromString(File.ReadAllText(f), typeMap: null, strict: true))
        .ToList();

    [Fact]
    public void Manifests_EveryDocument_IsAKnownKubernetesObjectInTheNamespace()
    {
        Assert.NotEmpty(Objects);
        foreach (var resource in Objects.OfType<IKubernetesObject<V1ObjectMeta>>())
        {
            Assert.False(string.IsNullOrEmpty(resource.Metadata.Name));
            if (resource is not V1Namespace)
            {
                Assert.Equal("serverless-inference", resource.Metadata.NamespaceProperty);
            }
        }

        Assert.All(Objects, o => Assert.IsAssignableFrom<IKubernetesObject<V1ObjectMeta>>(o));
    }

    [Fact]
    public void Kustomization_ListsEveryManifest()
    {
        var kustomization = new DeserializerBuilder().Build()
            .Deserialize<Dictionary<string, object>>(File.ReadAllText(Path.Combine(Folder, "kustomization.yaml")));
        var resources = ((List<object>)kustomization["resources"]).Cast<string>().Order();
        var files = Directory.GetFiles(Folder, "*.yaml").Select(Path.GetFileName).Where(f => f != "kustomization.yaml").Order();

        Assert.Equal(files, resources);
        Assert.Equal("serverless-inference", kustomization["namespace"]);
    }

    [Fact]
    public void Rbac_GrantsTheGatewayExactlyGetAndPatchOnTheWorkerDeploymentsScale()
    {
        var role = Single<V1Role>();
        var rule = Assert.Single(role.Rules);
        Assert.Equal(["apps"], rule.ApiGroups);
        Assert.Equal(["deployments/scale"], rule.Resources);
        Assert.Equal([KubernetesOrchestratorOptions.DefaultDeployment], rule.ResourceNames);
        Assert.Equal(["get", "patch"], rule.Verbs.Order());

        var binding = Single<V1RoleBinding>();
        Assert.Equal(("Role", role.Metadata.Name), (binding.RoleRef.Kind, binding.RoleRef.Name));
        var subject = Assert.Single(binding.Subjects);
        Assert.Equal("ServiceAccount", subject.Kind);
        Assert.Equal(Deployment("serverless-inference-gateway").Spec.Template.Spec.ServiceAccountName, subject.Name);
        Assert.Equal(Single<V1ServiceAccount>().Metadata.Name, subject.Name);
    }

    [Fact]
    public void Worker_StartsAtZeroRequestsAGpuAndOutlastsItsDrain()
    {
        var worker = Deployment(KubernetesOrchestratorOptions.DefaultDeployment);
        var pod = worker.Spec.Template.Spec;
        var container = Assert.Single(pod.Containers);

        Assert.Equal(0, worker.Spec.Replicas);
        Assert.Equal("1", container.Resources.Limits["nvidia.com/gpu"].ToString());
        Assert.Equal("serverless-inference-worker:latest", container.Image);
        Assert.False(pod.AutomountServiceAccountToken);

        // The host waits DrainTimeout + 5 s for the batch to finish (WorkerHostSetup); Kubernetes must wait longer.
        var drain = TimeSpan.Parse(Settings()["Inference__WorkerHost__DrainTimeout"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(pod.TerminationGracePeriodSeconds > (drain + TimeSpan.FromSeconds(5)).TotalSeconds,
            $"terminationGracePeriodSeconds {pod.TerminationGracePeriodSeconds} must exceed the drain timeout {drain} plus 5 s");

        // The probes hit /healthz on the port the worker listens on.
        var port = ListenPort(container);
        Assert.Equal(port, NamedPort(container, container.ReadinessProbe.HttpGet.Port));
        Assert.Equal("/healthz", container.ReadinessProbe.HttpGet.Path);
        Assert.Equal("/healthz", container.LivenessProbe.HttpGet.Path);
    }

    [Fact]
    public void Gateway_RunsTheServicesProfileDrivingTheWorkerDeployment()
    {
        var gateway = Deployment("serverless-inference-gateway");
        var container = Assert.Single(gateway.Spec.Template.Spec.Containers);
        var env = container.Env.ToDictionary(e => e.Name, e => e.Value);

        Assert.Equal(1, gateway.Spec.Replicas);
        Assert.Equal(["--profile", "services"], container.Args);
        Assert.Equal("Kubernetes", env["Inference__Orchestrator__Provider"]);
        Assert.Equal(KubernetesOrchestratorOptions.DefaultDeployment, env["Inference__Orchestrator__Kubernetes__Deployment"]);
        Assert.Equal("http://0.0.0.0:8080", env["ASPNETCORE_URLS"]);
        Assert.Equal(8080, NamedPort(container, container.ReadinessProbe.HttpGet.Port));
        Assert.Equal("/v2/health/ready", container.ReadinessProbe.HttpGet.Path);
        Assert.Equal("/v2/health/live", container.LivenessProbe.HttpGet.Path);
        Assert.Equal("serverless-inference-settings", Assert.Single(container.EnvFrom).ConfigMapRef.Name);
    }

    [Fact]
    public void Settings_PointAtTheServicesBesideThem()
    {
        var settings = Settings();
        var services = Objects.OfType<V1Service>().ToDictionary(s => s.Metadata.Name, s => s.Spec.Ports.Single().Port);

        Assert.Equal($"redis:{services["redis"]}", settings["Inference__Redis__ConnectionString"]);
        Assert.Contains($"BlobEndpoint=http://azurite:{services["azurite"]}/devstoreaccount1;", settings["Inference__ModelStore__Blob__ConnectionString"]);
        Assert.Equal("Redis", settings["Inference__Queue__Provider"]);
        Assert.Equal("Blob", settings["Inference__ModelStore__Provider"]);
    }

    [Fact]
    public void Redis_AppendsEveryWriteToAPersistentVolume()
    {
        var redis = Assert.Single(Deployment("redis").Spec.Template.Spec.Containers);
        var args = string.Join(' ', redis.Args);

        Assert.Contains("--appendonly yes", args);
        var claim = Assert.Single(Deployment("redis").Spec.Template.Spec.Volumes).PersistentVolumeClaim.ClaimName;
        Assert.Contains(Objects.OfType<V1PersistentVolumeClaim>(), c => c.Metadata.Name == claim);
    }

    [Fact]
    public void Redis_NeverEvictsAKey()
    {
        // Job records have a TTL: under a volatile-* policy a full Redis would drop the record of a queued job.
        var redis = Assert.Single(Deployment("redis").Spec.Template.Spec.Containers);

        Assert.Contains("--maxmemory-policy noeviction", string.Join(' ', redis.Args));
    }

    private static T Single<T>() => Assert.Single(Objects.OfType<T>());

    private static V1Deployment Deployment(string name) => Assert.Single(Objects.OfType<V1Deployment>(), d => d.Metadata.Name == name);

    private static Dictionary<string, string> Settings() => Single<V1ConfigMap>().Data.ToDictionary(kv => kv.Key, kv => kv.Value);

    private static int ListenPort(V1Container container) =>
        new Uri(container.Env.Single(e => e.Name == "ASPNETCORE_URLS").Value).Port;

    /// <summary>A probe's port, by number or by the container port's name.</summary>
    private static int NamedPort(V1Container container, IntOrString port) =>
        int.TryParse(port.Value, out var number) ? number : container.Ports.Single(p => p.Name == port.Value).ContainerPort;

    private static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "ServerlessInference.sln")))
            {
                return folder.FullName;
            }
        }

        throw new InvalidOperationException($"no ServerlessInference.sln above {AppContext.BaseDirectory}");
    }
}
