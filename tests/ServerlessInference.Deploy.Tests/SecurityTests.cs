using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ServerlessInference.Deploy.Tests;

/// <summary>No key-based access anywhere: local auth is off on every service that has it, and no app setting or
/// environment variable carries a key, a SAS or a password.</summary>
[Collection(BicepCollection.Name)]
public sealed class SecurityTests(BicepFixture bicep)
{
    public static TheoryData<string> Variants => ["gpu", "a100", "cpu"];

    [Theory]
    [MemberData(nameof(Variants))]
    public void Storage_SharedKeyAccess_IsDisabled(string variant)
    {
        var accounts = Snapshot(variant).OfType("Microsoft.Storage/storageAccounts").ToList();
        Assert.Equal(2, accounts.Count);
        Assert.All(accounts, storage =>
        {
            Assert.False((bool?)storage["properties"]!["allowSharedKeyAccess"] ?? true);
            Assert.False((bool?)storage["properties"]!["allowBlobPublicAccess"] ?? true);
        });
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void ServiceBus_LocalAuth_IsDisabled(string variant)
    {
        var serviceBus = Snapshot(variant).Single("Microsoft.ServiceBus/namespaces");
        Assert.True((bool?)serviceBus["properties"]!["disableLocalAuth"]);
    }

    [Fact]
    public void Redis_AccessKeys_AreDisabledAndTrafficEncrypted()
    {
        var database = bicep.Gpu.Single("Microsoft.Cache/redisEnterprise/databases");
        Assert.Equal("Disabled", (string?)database["properties"]!["accessKeysAuthentication"]);
        Assert.Equal("Encrypted", (string?)database["properties"]!["clientProtocol"]);
    }

    [Fact]
    public void ApplicationInsights_LocalAuth_IsDisabled()
    {
        var insights = bicep.Gpu.Single("Microsoft.Insights/components");
        Assert.True((bool?)insights["properties"]!["DisableLocalAuth"]);
        var workspace = bicep.Gpu.Single("Microsoft.OperationalInsights/workspaces");
        Assert.True((bool?)workspace["properties"]!["features"]!["disableLocalAuth"]);
    }

    [Fact]
    public void ContainerAppsEnvironment_Logs_NeedNoWorkspaceKey()
    {
        var environment = bicep.Gpu.Single("Microsoft.App/managedEnvironments");
        var logs = environment["properties"]!["appLogsConfiguration"]!;
        Assert.Equal("azure-monitor", (string?)logs["destination"]);
        Assert.Null(logs["logAnalyticsConfiguration"]);
        var diagnostics = bicep.Gpu.Single("Microsoft.Insights/diagnosticSettings");
        Assert.Equal(DeploymentSnapshot.Id(bicep.Gpu.Single("Microsoft.OperationalInsights/workspaces")), (string?)diagnostics["properties"]!["workspaceId"]);
    }

    [Fact]
    public void Registry_AdminUserAndAnonymousPull_AreDisabled()
    {
        var registry = bicep.Gpu.Single("Microsoft.ContainerRegistry/registries");
        Assert.False((bool?)registry["properties"]!["adminUserEnabled"] ?? true);
        Assert.False((bool?)registry["properties"]!["anonymousPullEnabled"] ?? true);
    }

    [Fact]
    public void FunctionApp_PublishingCredentials_AreDisabled()
    {
        var policies = bicep.Gpu.OfType("Microsoft.Web/sites/basicPublishingCredentialsPolicies").ToList();
        Assert.Equal(["ftp", "scm"], policies.Select(p => ((string)p["name"]!).Split('/')[^1]).Order());
        Assert.All(policies, p => Assert.False((bool?)p["properties"]!["allow"] ?? true));
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Settings_OfBothApps_CarryNoKeySasOrPassword(string variant)
    {
        var snapshot = Snapshot(variant);
        var settings = AllSettings(snapshot);
        Assert.True(settings.Count > 40, $"found only {settings.Count} settings");
        foreach (var (app, name, value) in settings)
        {
            Assert.DoesNotMatch(new Regex("AccountKey=|SharedAccessKey|SharedAccessSignature|sig=|password=|pwd=", RegexOptions.IgnoreCase), value);
            Assert.DoesNotMatch(new Regex(@"\blist[A-Za-z]*\(", RegexOptions.IgnoreCase), value);
            if (name.EndsWith("ConnectionString", StringComparison.OrdinalIgnoreCase) || name.EndsWith("CONNECTION_STRING", StringComparison.Ordinal))
            {
                // Only these two, and neither holds a secret: Redis is host:port,ssl=true (Entra ID sign-in) and the
                // Application Insights key is an identifier when local auth is off.
                Assert.True(
                    name is "Inference__Redis__ConnectionString" or "APPLICATIONINSIGHTS_CONNECTION_STRING",
                    $"{app} has a connection string setting {name}");
            }
        }
    }

    [Fact]
    public void RedisConnectionString_IsHostPortAndTlsOnly()
    {
        var redisId = DeploymentSnapshot.Id(bicep.Gpu.Single("Microsoft.Cache/redisEnterprise"));
        var expected = $"[format('{{0}}:{{1}},ssl=true', reference('{redisId}', '2025-04-01').hostName, 10000)]";
        foreach (var (_, name, value) in AllSettings(bicep.Gpu))
        {
            if (name == "Inference__Redis__ConnectionString")
            {
                Assert.Equal(expected, value);
            }
        }
    }

    private DeploymentSnapshot Snapshot(string variant) => variant switch
    {
        "gpu" => bicep.Gpu,
        "a100" => bicep.A100,
        _ => bicep.Cpu,
    };

    internal static List<(string App, string Name, string Value)> AllSettings(DeploymentSnapshot snapshot)
    {
        var settings = new List<(string, string, string)>();
        foreach (var site in snapshot.OfType("Microsoft.Web/sites"))
        {
            foreach (var (name, value) in DeploymentSnapshot.NameValues(site["properties"]!["siteConfig"]!["appSettings"]!.AsArray()))
            {
                settings.Add(((string)site["name"]!, name, value));
            }
        }

        foreach (var app in snapshot.OfType("Microsoft.App/containerApps"))
        {
            foreach (var container in app["properties"]!["template"]!["containers"]!.AsArray())
            {
                foreach (var (name, value) in DeploymentSnapshot.NameValues(container!["env"] as JsonArray))
                {
                    settings.Add(((string)app["name"]!, name, value));
                }
            }
        }

        return settings;
    }
}
