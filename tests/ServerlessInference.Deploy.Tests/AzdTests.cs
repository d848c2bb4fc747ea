using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace ServerlessInference.Deploy.Tests;

/// <summary>What azd reads: azure.yaml's services match the resources' azd-service-name tags, the parameters file maps
/// azd's variables onto the template's parameters, and the outputs azd and the README use exist.</summary>
[Collection(BicepCollection.Name)]
public sealed class AzdTests(BicepFixture bicep)
{
    [Fact]
    public void AzureYaml_Infra_PointsAtTheBicepFolder()
    {
        var infra = (YamlMappingNode)AzureYaml()["infra"];
        Assert.Equal("bicep", Scalar(infra, "provider"));
        Assert.Equal("bicep", Scalar(infra, "path"));
        Assert.True(File.Exists(RepositoryPaths.Of(Path.Combine(Scalar(infra, "path"), Scalar(infra, "module") + ".bicep"))));
    }

    [Fact]
    public void AzureYaml_Services_MatchTheAzdServiceNameTags()
    {
        var services = (YamlMappingNode)AzureYaml()["services"];
        var names = services.Children.Keys.Select(k => ((YamlScalarNode)k).Value!).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["functions", "worker"], names);

        var expectedType = new Dictionary<string, string>
        {
            ["functions"] = "Microsoft.Web/sites",
            ["worker"] = "Microsoft.App/containerApps",
        };
        foreach (var snapshot in new[] { bicep.Gpu, bicep.Cpu })
        {
            var tagged = snapshot.Resources
                .Where(r => r["tags"]?["azd-service-name"] is not null)
                .Select(r => ((string?)r["tags"]!["azd-service-name"], (string?)r["type"]))
                .Order()
                .ToList();
            Assert.Equal(names.Select(n => ((string?)n, (string?)expectedType[n])), tagged);
        }
    }

    [Fact]
    public void AzureYaml_Functions_IsADotnetFunctionProject()
    {
        var functions = Service("functions");
        Assert.Equal("function", Scalar(functions, "host"));
        Assert.Equal("dotnet", Scalar(functions, "language"));
        Assert.Equal("./src/ServerlessInference.Functions", Scalar(functions, "project"));
        var project = RepositoryPaths.Of(Scalar(functions, "project"));
        Assert.True(File.Exists(Path.Combine(project, "ServerlessInference.Functions.csproj")));
        Assert.True(File.Exists(Path.Combine(project, "host.json")));
    }

    [Fact]
    public void AzureYaml_Worker_IsAContainerAppBuiltFromTheWorkerDockerfileWithTheRepositoryAsContext()
    {
        var worker = Service("worker");
        Assert.Equal("containerapp", Scalar(worker, "host"));
        var project = RepositoryPaths.Of(Scalar(worker, "project"));
        Assert.Equal(RepositoryPaths.Of("src/ServerlessInference.Worker"), project);
        Assert.True(File.Exists(Path.Combine(project, "ServerlessInference.Worker.csproj")));

        // azd resolves docker.path and docker.context against the service's project folder.
        var docker = (YamlMappingNode)worker["docker"];
        Assert.Equal(RepositoryPaths.Of("src/ServerlessInference.Worker/Dockerfile"), Path.GetFullPath(Path.Combine(project, Scalar(docker, "path"))));
        Assert.Equal(RepositoryPaths.Root.TrimEnd('/'), Path.GetFullPath(Path.Combine(project, Scalar(docker, "context"))).TrimEnd('/'));
        Assert.True(File.Exists(Path.Combine(project, Scalar(docker, "path"))));
    }

    [Fact]
    public void ParametersFile_AzdVariables_MapOntoDeclaredParametersAndCoverTheRequiredOnes()
    {
        var file = JsonNode.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.BicepFolder, "main.parameters.json")))!["parameters"]!.AsObject();
        var declared = bicep.Compiled["parameters"]!.AsObject();

        Assert.Equal("${AZURE_ENV_NAME}", (string?)file["environmentName"]!["value"]);
        Assert.Equal("${AZURE_LOCATION}", (string?)file["location"]!["value"]);
        Assert.Equal("${AZURE_PRINCIPAL_ID}", (string?)file["principalId"]!["value"]);
        Assert.Equal("${SERVICE_WORKER_RESOURCE_EXISTS=false}", (string?)file["workerExists"]!["value"]);
        foreach (var (name, _) in file)
        {
            Assert.True(declared.ContainsKey(name), $"main.parameters.json sets '{name}', which main.bicep does not declare");
        }

        foreach (var (name, parameter) in declared)
        {
            if (parameter!["defaultValue"] is null)
            {
                Assert.True(file.ContainsKey(name), $"main.bicep parameter '{name}' has no default and main.parameters.json does not set it");
            }
        }
    }

    [Fact]
    public void ParametersFile_Defaults_AreTheTemplateDefaults()
    {
        var file = JsonNode.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.BicepFolder, "main.parameters.json")))!["parameters"]!.AsObject();
        var declared = bicep.Compiled["parameters"]!.AsObject();
        var withDefault = 0;
        foreach (var (name, entry) in file)
        {
            // ${VARIABLE=default}: azd uses the default when the environment does not set VARIABLE.
            var match = Regex.Match((string?)entry!["value"] ?? "", @"^\$\{[A-Z_]+=(.*)\}$");
            if (!match.Success || name == "workerExists")
            {
                continue;
            }

            withDefault++;
            var templateDefault = declared[name]!["defaultValue"];
            Assert.NotNull(templateDefault);
            var expected = templateDefault.GetValueKind() == System.Text.Json.JsonValueKind.String
                ? (string?)templateDefault
                : templateDefault.ToJsonString();
            Assert.True(expected == match.Groups[1].Value, $"main.parameters.json defaults {name} to '{match.Groups[1].Value}', main.bicep to '{expected}'");
        }

        Assert.True(withDefault >= 10, $"only {withDefault} parameters have a default in main.parameters.json");
    }

    [Fact]
    public void Outputs_IncludeWhatAzdAndTheDeployGuideUse()
    {
        var outputs = bicep.Gpu.Outputs;
        var registryId = DeploymentSnapshot.Id(bicep.Gpu.Single("Microsoft.ContainerRegistry/registries"));
        Assert.True(DeploymentSnapshot.IsReferenceTo((string?)outputs["AZURE_CONTAINER_REGISTRY_ENDPOINT"], registryId, "loginServer"));
        Assert.Equal("rg-ci-gpu", (string?)outputs["AZURE_RESOURCE_GROUP"]);
        Assert.Equal((string?)FunctionAppTests.FunctionApp(bicep.Gpu)["name"], (string?)outputs["SERVICE_FUNCTIONS_NAME"]);
        Assert.Equal((string?)WorkerTests.Worker(bicep.Gpu)["name"], (string?)outputs["SERVICE_WORKER_NAME"]);
        Assert.Equal((string?)bicep.Gpu.ModelStorage["name"], (string?)outputs["AZURE_STORAGE_ACCOUNT_NAME"]);
        Assert.Equal("models", (string?)outputs["AZURE_MODELS_CONTAINER_NAME"]);
        Assert.StartsWith("[format('https://{0}', reference(", (string?)outputs["SERVICE_FUNCTIONS_URI"], StringComparison.Ordinal);
        foreach (var name in new[] { "AZURE_FUNCTIONS_IDENTITY_CLIENT_ID", "AZURE_WORKER_IDENTITY_CLIENT_ID", "AZURE_SERVICEBUS_NAMESPACE", "AZURE_REDIS_HOST_NAME", "AZURE_TENANT_ID", "AZURE_LOCATION" })
        {
            Assert.False(string.IsNullOrEmpty((string?)outputs[name]), $"output {name} is missing");
        }
    }

    [Fact]
    public void ResourceNames_FitAzureNamingRules()
    {
        var snapshot = bicep.Gpu;
        Assert.All(snapshot.OfType("Microsoft.Storage/storageAccounts"), a => Assert.Matches("^[a-z0-9]{3,24}$", (string?)a["name"]));
        Assert.Matches("^[a-zA-Z0-9]{5,50}$", (string?)snapshot.Single("Microsoft.ContainerRegistry/registries")["name"]);
        Assert.Matches("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", (string?)WorkerTests.Worker(snapshot)["name"]);
        Assert.Matches("^[a-zA-Z0-9]{1,60}$", ((string)snapshot.OfType("Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments").First()["name"]!).Split('/')[^1]);
    }

    private static YamlMappingNode AzureYaml()
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(RepositoryPaths.Of("azure.yaml"));
        stream.Load(reader);
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    private static YamlMappingNode Service(string name) => (YamlMappingNode)((YamlMappingNode)AzureYaml()["services"])[name];

    private static string Scalar(YamlMappingNode node, string key) =>
        ((YamlScalarNode)node[key]).Value ?? throw new InvalidDataException($"azure.yaml: '{key}' is empty");
}
