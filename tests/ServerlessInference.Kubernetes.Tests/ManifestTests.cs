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

    [Theory]
    [InlineData("serverless-inference-gateway")]
    [InlineData(KubernetesOrchestratorOptions.DefaultDeployment)]
    public void Settings_PointAtTheServicesBesideThem(string deployment)
    {
        var settings = Settings();
        var env = Env(deployment);
        var services = Objects.OfType<V1Service>().ToDictionary(s => s.Metadata.Name, s => s.Spec.Ports.Single().Port);

        Assert.Equal($"redis:{services["redis"]},password=$(REDIS_PASSWORD)", env["Inference__Redis__ConnectionString"].Value);
        Assert.Contains($"BlobEndpoint=http://azurite:{services["azurite"]}/devstoreaccount1;", env["Inference__ModelStore__Blob__ConnectionString"].Value);
        Assert.Equal("Redis", settings["Inference__Queue__Provider"]);
        Assert.Equal("Blob", settings["Inference__ModelStore__Provider"]);
    }

    [Fact]
    public void ConfigMaps_HoldNoKeyOrPassword()
    {
        string[] credentials = ["AccountKey=", "password=", "SharedAccessKey=", "SharedAccessSignature=", "sig=", "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="];
        var configMaps = Objects.OfType<V1ConfigMap>().ToList();

        Assert.NotEmpty(configMaps);
        foreach (var (key, value) in configMaps.SelectMany(c => c.Data))
        {
            Assert.DoesNotContain(credentials, c => value.Contains(c, StringComparison.OrdinalIgnoreCase) || key.Contains("password", StringComparison.OrdinalIgnoreCase));
        }

        // No Secret is committed either: kustomize generates it from a file git ignores.
        Assert.Empty(Objects.OfType<V1Secret>());
    }

    [Fact]
    public void Kustomization_GeneratesTheSecretFromAnIgnoredFile()
    {
        var generator = Assert.Single(Kustomization().SecretGenerator);

        Assert.Equal(SecretName, generator.Name);
        Assert.Equal(["secrets.env"], generator.Envs);
        Assert.Contains("infra/k8s/secrets.env", File.ReadAllLines(Path.Combine(RepositoryRoot(), ".gitignore")));
    }

    [Theory]
    [InlineData("serverless-inference-gateway")]
    [InlineData(KubernetesOrchestratorOptions.DefaultDeployment)]
    public void GatewayAndWorkers_TakeTheCredentialsFromTheSecretBeforeUsingThem(string deployment)
    {
        var env = Assert.Single(Deployment(deployment).Spec.Template.Spec.Containers).Env.ToList();
        var names = env.Select(e => e.Name).ToList();

        AssertFromSecret(env, "REDIS_PASSWORD", "redis-password");
        AssertFromSecret(env, "AZURITE_ACCOUNT_KEY", "azurite-account-key");
        var redis = env.Single(e => e.Name == "Inference__Redis__ConnectionString");
        var blob = env.Single(e => e.Name == "Inference__ModelStore__Blob__ConnectionString");
        Assert.Contains("password=$(REDIS_PASSWORD)", redis.Value);
        Assert.Contains("AccountKey=$(AZURITE_ACCOUNT_KEY);", blob.Value);
        // Kubernetes expands $(NAME) only from variables defined earlier in the list.
        Assert.True(names.IndexOf("REDIS_PASSWORD") < names.IndexOf(redis.Name));
        Assert.True(names.IndexOf("AZURITE_ACCOUNT_KEY") < names.IndexOf(blob.Name));
    }

    [Fact]
    public void Redis_RequiresThePasswordFromTheSecret()
    {
        var redis = Assert.Single(Deployment("redis").Spec.Template.Spec.Containers);
        var commandLine = redis.Command.Concat(redis.Args ?? []).ToList();

        AssertFromSecret(redis.Env, "REDIS_PASSWORD", "redis-password");
        Assert.Equal(["docker-entrypoint.sh", "redis-server"], redis.Command.Take(2));
        var requirePass = commandLine.IndexOf("--requirepass");
        Assert.True(requirePass > 0, string.Join(' ', commandLine));
        Assert.Equal("$(REDIS_PASSWORD)", commandLine[requirePass + 1]);
        // The probes' redis-cli must authenticate too, and since it exits 0 on NOAUTH, they must look for the PONG.
        AssertFromSecret(redis.Env, "REDISCLI_AUTH", "redis-password");
        Assert.Equal(["sh", "-c", "redis-cli ping | grep -qx PONG"], redis.ReadinessProbe.Exec.Command);
        Assert.Equal(redis.ReadinessProbe.Exec.Command, redis.LivenessProbe.Exec.Command);
    }

    [Fact]
    public void Azurite_AcceptsOnlyTheKeyFromTheSecret()
    {
        var azurite = Assert.Single(Deployment("azurite").Spec.Template.Spec.Containers);
        var names = azurite.Env.Select(e => e.Name).ToList();

        AssertFromSecret(azurite.Env, "AZURITE_ACCOUNT_KEY", "azurite-account-key");
        // Custom accounts replace the built-in devstoreaccount1 and its public key.
        Assert.Equal("devstoreaccount1:$(AZURITE_ACCOUNT_KEY)", azurite.Env.Single(e => e.Name == "AZURITE_ACCOUNTS").Value);
        Assert.True(names.IndexOf("AZURITE_ACCOUNT_KEY") < names.IndexOf("AZURITE_ACCOUNTS"));
    }

    [Theory]
    [InlineData("redis")]
    [InlineData("azurite")]
    public void NetworkPolicy_AdmitsOnlyTheGatewayAndWorkersOnTheServicePort(string service)
    {
        var target = Deployment(service);
        var targetLabels = target.Spec.Template.Metadata.Labels;
        var policies = Objects.OfType<V1NetworkPolicy>().Where(p => Matches(p.Spec.PodSelector, targetLabels)).ToList();
        var port = Assert.Single(Assert.Single(target.Spec.Template.Spec.Containers).Ports).ContainerPort;

        var policy = Assert.Single(policies);
        Assert.Contains("Ingress", policy.Spec.PolicyTypes);
        var rule = Assert.Single(policy.Spec.Ingress);
        Assert.Equal(port.ToString(System.Globalization.CultureInfo.InvariantCulture), Assert.Single(rule.Ports).Port.Value);
        var peer = Assert.Single(rule.FromProperty);
        Assert.Null(peer.NamespaceSelector);
        Assert.Null(peer.IpBlock);

        // Of every pod template in the manifests, the peer selects exactly the gateway's and the workers'. The workers
        // the scaler adds are copies of the worker Deployment's template, so they are admitted too.
        var admitted = Objects.OfType<V1Deployment>()
            .Where(d => Matches(peer.PodSelector, d.Spec.Template.Metadata.Labels))
            .Select(d => d.Metadata.Name)
            .Order(StringComparer.Ordinal);
        Assert.Equal(new[] { "serverless-inference-gateway", KubernetesOrchestratorOptions.DefaultDeployment }.Order(StringComparer.Ordinal), admitted);
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

    private const string SecretName = "serverless-inference-secrets";

    private static T Single<T>() => Assert.Single(Objects.OfType<T>());

    private static Dictionary<string, V1EnvVar> Env(string deployment) =>
        Assert.Single(Deployment(deployment).Spec.Template.Spec.Containers).Env.ToDictionary(e => e.Name);

    private static void AssertFromSecret(IEnumerable<V1EnvVar> env, string name, string key)
    {
        var variable = Assert.Single(env, e => e.Name == name);
        Assert.Null(variable.Value);
        Assert.Equal((SecretName, key), (variable.ValueFrom.SecretKeyRef.Name, variable.ValueFrom.SecretKeyRef.Key));
    }

    /// <summary>Whether a label selector (matchLabels and In/NotIn/Exists/DoesNotExist expressions) selects labels.</summary>
    private static bool Matches(V1LabelSelector selector, IDictionary<string, string> labels) =>
        (selector.MatchLabels ?? new Dictionary<string, string>()).All(l => labels.TryGetValue(l.Key, out var v) && v == l.Value)
        && (selector.MatchExpressions ?? []).All(e => e.OperatorProperty switch
        {
            "In" => labels.TryGetValue(e.Key, out var v) && e.Values.Contains(v),
            "NotIn" => !labels.TryGetValue(e.Key, out var v) || !e.Values.Contains(v),
            "Exists" => labels.ContainsKey(e.Key),
            "DoesNotExist" => !labels.ContainsKey(e.Key),
            _ => throw new InvalidDataException($"unknown selector operator {e.OperatorProperty}"),
        });

    private static KustomizationFile Kustomization() => new DeserializerBuilder()
        .WithNamingConvention(YamlDotNet.Serialization.NamingConventions.CamelCaseNamingConvention.Instance)
        .IgnoreUnmatchedProperties()
        .Build()
        .Deserialize<KustomizationFile>(File.ReadAllText(Path.Combine(Folder, "kustomization.yaml")));

    private sealed class KustomizationFile
    {
        public List<SecretGeneratorEntry> SecretGenerator { get; set; } = [];
    }

    private sealed class SecretGeneratorEntry
    {
        public string Name { get; set; } = "";

        public List<string> Envs { get; set; } = [];
    }

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
