using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ServerlessInference.Deploy.Tests;

/// <summary>The Functions app: Flex Consumption, .NET isolated 10, and app settings that reach every resource by
/// identity.</summary>
[Collection(BicepCollection.Name)]
public sealed class FunctionAppTests(BicepFixture bicep)
{
    [Fact]
    public void Plan_IsFlexConsumptionFC1OnLinux()
    {
        var plan = bicep.Gpu.Single("Microsoft.Web/serverfarms");
        Assert.Equal("FC1", (string?)plan["sku"]!["name"]);
        Assert.Equal("FlexConsumption", (string?)plan["sku"]!["tier"]);
        Assert.True((bool?)plan["properties"]!["reserved"]);
        Assert.Equal(DeploymentSnapshot.Id(plan), (string?)FunctionApp(bicep.Gpu)["properties"]!["serverFarmId"]);
    }

    [Fact]
    public void FunctionApp_Config_RunsDotnetIsolated10AndDeploysWithItsIdentity()
    {
        var app = FunctionApp(bicep.Gpu);
        Assert.Equal("functionapp,linux", (string?)app["kind"]);
        var config = app["properties"]!["functionAppConfig"]!;
        Assert.Equal("dotnet-isolated", (string?)config["runtime"]!["name"]);
        Assert.Equal("10.0", (string?)config["runtime"]!["version"]);

        var identity = WorkerTests.IdentityId(bicep.Gpu, "id-func-");
        Assert.Equal([identity], app["identity"]!["userAssignedIdentities"]!.AsObject().Select(p => p.Key));
        var storage = config["deployment"]!["storage"]!;
        Assert.Equal("blobContainer", (string?)storage["type"]);
        Assert.Equal("UserAssignedIdentity", (string?)storage["authentication"]!["type"]);
        Assert.Equal(identity, (string?)storage["authentication"]!["userAssignedIdentityResourceId"]);

        // The package container exists in the host's storage account, not in the model store's.
        var containers = bicep.Gpu.OfType("Microsoft.Storage/storageAccounts/blobServices/containers")
            .Select(c => ((string)c["name"]!).Split('/')).ToList();
        var packageContainer = Assert.Single(containers, c => c[^1].StartsWith("app-package-", StringComparison.Ordinal));
        Assert.True(packageContainer[^1].Length <= 63, packageContainer[^1]);
        Assert.Equal((string?)bicep.Gpu.HostStorage["name"], packageContainer[0]);
        Assert.StartsWith($"[format('{{0}}{{1}}', reference('{DeploymentSnapshot.Id(bicep.Gpu.HostStorage)}'", (string?)storage["value"], StringComparison.Ordinal);
        Assert.EndsWith($", '{packageContainer[^1]}')]", (string?)storage["value"], StringComparison.Ordinal);
        Assert.Equal((string?)bicep.Gpu.ModelStorage["name"], Assert.Single(containers, c => c[^1] == "models")[0]);
    }

    [Fact]
    public void FunctionApp_HostStorage_UsesTheIdentityNotAKey()
    {
        var settings = AppSettings(bicep.Gpu);
        var identity = WorkerTests.IdentityId(bicep.Gpu, "id-func-");
        Assert.Equal((string?)bicep.Gpu.HostStorage["name"], settings["AzureWebJobsStorage__accountName"]);
        Assert.NotEqual((string?)bicep.Gpu.ModelStorage["name"], settings["AzureWebJobsStorage__accountName"]);
        Assert.Equal("managedidentity", settings["AzureWebJobsStorage__credential"]);
        Assert.True(DeploymentSnapshot.IsReferenceTo(settings["AzureWebJobsStorage__clientId"], identity, "clientId"));
        Assert.False(settings.ContainsKey("AzureWebJobsStorage"), "AzureWebJobsStorage (a connection string) must not be set");
        // Flex Consumption takes the runtime from functionAppConfig and rejects these settings.
        Assert.False(settings.ContainsKey("FUNCTIONS_WORKER_RUNTIME"));
        Assert.False(settings.ContainsKey("FUNCTIONS_EXTENSION_VERSION"));
    }

    [Fact]
    public void FunctionApp_Telemetry_AuthenticatesWithEntraId()
    {
        var settings = AppSettings(bicep.Gpu);
        var identity = WorkerTests.IdentityId(bicep.Gpu, "id-func-");
        Assert.Matches(
            new Regex($@"^{Regex.Escape("[format('ClientId={0};Authorization=AAD', reference('" + identity + "', '")}[^']+'\)\.clientId\)\]$"),
            settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]);
        var insights = DeploymentSnapshot.Id(bicep.Gpu.Single("Microsoft.Insights/components"));
        Assert.True(DeploymentSnapshot.IsReferenceTo(settings["APPLICATIONINSIGHTS_CONNECTION_STRING"], insights, "ConnectionString"));
    }

    [Fact]
    public void FunctionApp_Settings_PointAtEveryResourceByIdentity()
    {
        var snapshot = bicep.Gpu;
        var settings = AppSettings(snapshot);
        var identity = WorkerTests.IdentityId(snapshot, "id-func-");
        var worker = WorkerTests.Worker(snapshot);
        var workerEnv = WorkerTests.Env(worker);

        Assert.True(DeploymentSnapshot.IsReferenceTo(settings["AZURE_CLIENT_ID"], identity, "clientId"));
        Assert.Equal("ContainerApps", settings["Inference__Orchestrator__Provider"]);
        Assert.Equal(DeploymentSnapshot.SubscriptionId, settings["Inference__Orchestrator__ContainerApps__SubscriptionId"]);
        Assert.Equal("rg-ci-gpu", settings["Inference__Orchestrator__ContainerApps__ResourceGroup"]);
        Assert.Equal((string?)worker["name"], settings["Inference__Orchestrator__ContainerApps__AppName"]);
        Assert.True(DeploymentSnapshot.IsReferenceTo(settings["Inference__Orchestrator__ContainerApps__ManagedIdentityClientId"], identity, "clientId"));
        Assert.Equal("*/10 * * * * *", settings["SCALER_SCHEDULE"]);
        Assert.Equal("EntraId", settings["Inference__Redis__Authentication"]);
        Assert.True(DeploymentSnapshot.IsReferenceTo(settings["Inference__Redis__EntraPrincipalId"], identity, "principalId"));

        // The gateway/scaler and the worker agree on every shared setting; only the identity differs.
        foreach (var key in new[]
        {
            "Inference__Queue__Provider", "Inference__Queue__LeaseDuration", "Inference__Queue__MaxDeliveryCount",
            "Inference__ServiceBus__FullyQualifiedNamespace", "Inference__ServiceBus__QueueName",
            "Inference__Results__Provider", "Inference__Registry__Provider", "Inference__Redis__ConnectionString",
            "Inference__ModelStore__Provider", "Inference__ModelStore__Blob__ServiceUri", "Inference__ModelStore__Blob__Container",
        })
        {
            Assert.Equal(workerEnv[key], settings[key]);
        }

        Assert.NotEqual(workerEnv["AZURE_CLIENT_ID"], settings["AZURE_CLIENT_ID"]);
    }

    internal static JsonObject FunctionApp(DeploymentSnapshot snapshot) => snapshot.Single("Microsoft.Web/sites", "func-");

    internal static IReadOnlyDictionary<string, string> AppSettings(DeploymentSnapshot snapshot) =>
        DeploymentSnapshot.NameValues(FunctionApp(snapshot)["properties"]!["siteConfig"]!["appSettings"]!.AsArray());
}
