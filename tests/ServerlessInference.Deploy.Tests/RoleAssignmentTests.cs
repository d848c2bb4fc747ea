using System.Text.Json.Nodes;

namespace ServerlessInference.Deploy.Tests;

/// <summary>Every grant the platform needs exists, to the right principal with the right role at the right scope, and
/// there are no others.</summary>
/// <remarks>Role ids are Azure built-in roles (learn.microsoft.com/azure/role-based-access-control/built-in-roles).</remarks>
[Collection(BicepCollection.Name)]
public sealed class RoleAssignmentTests(BicepFixture bicep)
{
    private const string StorageBlobDataOwner = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b";
    private const string StorageBlobDataContributor = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
    private const string StorageBlobDataReader = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";
    private const string ServiceBusDataOwner = "090c5cfd-751d-490a-894a-3ce6f1109419";
    private const string ServiceBusDataReceiver = "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0";
    private const string AcrPull = "7f951dda-4ed3-4680-a7ca-43fe172d538d";
    private const string MonitoringMetricsPublisher = "3913510d-42f4-4e42-8a64-420c390055eb";

    /// <summary>Built-in roles that may write anything: none of them is granted to anyone.</summary>
    private static readonly string[] s_broadRoles =
    [
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", // Owner
        "b24988ac-6180-42a0-ab88-20f7382dd24c", // Contributor
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", // User Access Administrator
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168", // Role Based Access Control Administrator
        "17d1049b-9a84-46fb-8f53-869881c3d3ab", // Storage Account Contributor
        "358470bc-b998-42bd-ab17-a7e34c199c0d", // Container Apps Contributor
    ];

    /// <summary>(scope, principal, built-in role): the grants of the default deployment.</summary>
    public static TheoryData<string, string, string> BuiltInGrants => new()
    {
        { "hoststorage", "functions", StorageBlobDataOwner },
        { "models", "functions", StorageBlobDataReader },
        { "models", "worker", StorageBlobDataReader },
        { "models", "user", StorageBlobDataContributor },
        { "servicebus", "functions", ServiceBusDataOwner },
        { "servicebus", "worker", ServiceBusDataReceiver },
        { "registry", "worker", AcrPull },
        { "appinsights", "functions", MonitoringMetricsPublisher },
    };

    [Theory]
    [MemberData(nameof(BuiltInGrants))]
    public void BuiltInRole_Grant_ExistsOnceWithTheRightPrincipalAndScope(string scope, string principal, string role)
    {
        var snapshot = bicep.Gpu;
        var matches = Assignments(snapshot).Where(a =>
            DeploymentSnapshot.ScopeOf(a) == Scope(snapshot, scope)
            && (string?)a["properties"]!["roleDefinitionId"] == DeploymentSnapshot.BuiltInRole(role)
            && IsPrincipal(snapshot, (string?)a["properties"]!["principalId"], principal)).ToList();
        var assignment = Assert.Single(matches);
        Assert.Equal(principal == "user" ? "User" : "ServicePrincipal", (string?)assignment["properties"]!["principalType"]);
    }

    [Fact]
    public void RoleAssignments_DefaultDeployment_AreExactlyTheExpectedOnes()
    {
        // 8 built-in grants + the scaler role at 3 scopes. Nothing broader (no Owner, no Contributor).
        var assignments = Assignments(bicep.Gpu).ToList();
        Assert.Equal(BuiltInGrants.Count + 3, assignments.Count);
        var scalerRole = DeploymentSnapshot.BuiltInRole((string)bicep.Gpu.Single("Microsoft.Authorization/roleDefinitions")["name"]!);
        var allowed = BuiltInGrants.Select(g => (string?)DeploymentSnapshot.BuiltInRole((string)g[2])).Append(scalerRole).ToHashSet();
        Assert.All(assignments, a => Assert.Contains((string?)a["properties"]!["roleDefinitionId"], allowed));
    }

    [Fact]
    public void RoleAssignments_WithoutDeployingUser_GrantNothingToAUser()
    {
        var assignments = Assignments(bicep.Cpu).ToList();
        Assert.Equal(BuiltInGrants.Count - 1 + 3, assignments.Count);
        Assert.All(assignments, a => Assert.Equal("ServicePrincipal", (string?)a["properties"]!["principalType"]));
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("cpu")]
    public void RoleAssignments_NoneIsABroadBuiltInRole(string variant)
    {
        var snapshot = variant == "gpu" ? bicep.Gpu : bicep.Cpu;
        var broad = s_broadRoles.Select(r => (string?)DeploymentSnapshot.BuiltInRole(r)).ToHashSet();

        Assert.All(Assignments(snapshot), a => Assert.DoesNotContain((string?)a["properties"]!["roleDefinitionId"], broad));
    }

    [Fact]
    public void ModelStore_OnlyTheDeployingUserCanWriteAndEveryoneElseOnlyReads()
    {
        var snapshot = bicep.Gpu;
        var modelStorage = DeploymentSnapshot.Id(snapshot.ModelStorage);

        // Every grant on the model store's account, or on anything in it, or on a scope above it.
        var onModels = Assignments(snapshot).Where(a =>
        {
            var scope = DeploymentSnapshot.ScopeOf(a);
            return scope.StartsWith(modelStorage, StringComparison.OrdinalIgnoreCase) || modelStorage.StartsWith(scope + "/", StringComparison.OrdinalIgnoreCase);
        }).ToList();

        Assert.Equal(3, onModels.Count);
        Assert.All(onModels, a =>
        {
            var role = (string?)a["properties"]!["roleDefinitionId"];
            var user = IsPrincipal(snapshot, (string?)a["properties"]!["principalId"], "user");
            Assert.Equal(DeploymentSnapshot.BuiltInRole(user ? StorageBlobDataContributor : StorageBlobDataReader), role);
        });
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("cpu")]
    public void WorkerIdentity_BlobAccess_IsStorageBlobDataReaderOnly(string variant)
    {
        var snapshot = variant == "gpu" ? bicep.Gpu : bicep.Cpu;
        string[] blobRoles = [StorageBlobDataOwner, StorageBlobDataContributor, StorageBlobDataReader];
        var workerBlobRoles = Assignments(snapshot)
            .Where(a => IsPrincipal(snapshot, (string?)a["properties"]!["principalId"], "worker"))
            .Select(a => (string?)a["properties"]!["roleDefinitionId"])
            .Where(r => blobRoles.Select(DeploymentSnapshot.BuiltInRole).Contains(r))
            .ToList();

        Assert.Equal([DeploymentSnapshot.BuiltInRole(StorageBlobDataReader)], workerBlobRoles);
    }

    [Fact]
    public void ScalerRole_CustomRole_CanOnlyReadAndWriteTheWorkerApp()
    {
        var role = bicep.Gpu.Single("Microsoft.Authorization/roleDefinitions");
        var properties = role["properties"]!;
        Assert.Equal("CustomRole", (string?)properties["type"]);
        Assert.Equal(["/subscriptions/" + DeploymentSnapshot.SubscriptionId + "/resourceGroups/rg-ci-gpu"], properties["assignableScopes"]!.AsArray().Select(s => (string?)s));
        var permissions = Assert.Single(properties["permissions"]!.AsArray())!;
        Assert.Equal(
            [
                "Microsoft.App/containerApps/read",
                "Microsoft.App/containerApps/write",
                "Microsoft.App/managedEnvironments/join/action",
                "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
            ],
            permissions["actions"]!.AsArray().Select(a => (string)a!).Order(StringComparer.Ordinal));
        Assert.Empty(permissions["dataActions"]!.AsArray());
        Assert.Empty(permissions["notActions"]!.AsArray());
    }

    [Fact]
    public void ScalerRole_Assignments_GoToTheFunctionsIdentityOnWorkerAppEnvironmentAndIdentity()
    {
        var snapshot = bicep.Gpu;
        var scalerRole = DeploymentSnapshot.BuiltInRole((string)snapshot.Single("Microsoft.Authorization/roleDefinitions")["name"]!);
        var assignments = Assignments(snapshot).Where(a => (string?)a["properties"]!["roleDefinitionId"] == scalerRole).ToList();
        Assert.All(assignments, a => Assert.True(IsPrincipal(snapshot, (string?)a["properties"]!["principalId"], "functions")));
        Assert.Equal(
            new[]
            {
                DeploymentSnapshot.Id(WorkerTests.Worker(snapshot)),
                DeploymentSnapshot.Id(snapshot.Single("Microsoft.App/managedEnvironments")),
                WorkerTests.IdentityId(snapshot, "id-worker-"),
            }.Order(StringComparer.Ordinal),
            assignments.Select(DeploymentSnapshot.ScopeOf).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void RedisAccess_EachIdentity_HasTheDefaultAccessPolicy()
    {
        var snapshot = bicep.Gpu;
        var policies = snapshot.OfType("Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments").ToList();
        Assert.Equal(2, policies.Count);
        Assert.All(policies, p => Assert.Equal("default", (string?)p["properties"]!["accessPolicyName"]));
        var objectIds = policies.Select(p => (string?)p["properties"]!["user"]!["objectId"]).ToList();
        Assert.Contains(objectIds, id => IsPrincipal(snapshot, id, "functions"));
        Assert.Contains(objectIds, id => IsPrincipal(snapshot, id, "worker"));
    }

    private static IEnumerable<JsonObject> Assignments(DeploymentSnapshot snapshot) =>
        snapshot.OfType("Microsoft.Authorization/roleAssignments");

    private static bool IsPrincipal(DeploymentSnapshot snapshot, string? principalId, string principal) => principal switch
    {
        "user" => principalId == BicepFixture.DeployingUserObjectId,
        "functions" => DeploymentSnapshot.IsReferenceTo(principalId, WorkerTests.IdentityId(snapshot, "id-func-"), "principalId"),
        "worker" => DeploymentSnapshot.IsReferenceTo(principalId, WorkerTests.IdentityId(snapshot, "id-worker-"), "principalId"),
        _ => throw new ArgumentOutOfRangeException(nameof(principal), principal, null),
    };

    private static string Scope(DeploymentSnapshot snapshot, string scope) => scope switch
    {
        "hoststorage" => DeploymentSnapshot.Id(snapshot.HostStorage),
        "models" => DeploymentSnapshot.Id(snapshot.OfType("Microsoft.Storage/storageAccounts/blobServices/containers")
            .Single(c => ((string)c["name"]!).EndsWith("/models", StringComparison.Ordinal))),
        "servicebus" => DeploymentSnapshot.Id(snapshot.Single("Microsoft.ServiceBus/namespaces")),
        "registry" => DeploymentSnapshot.Id(snapshot.Single("Microsoft.ContainerRegistry/registries")),
        "appinsights" => DeploymentSnapshot.Id(snapshot.Single("Microsoft.Insights/components")),
        _ => throw new ArgumentOutOfRangeException(nameof(scope), scope, null),
    };
}
