using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ServerlessInference.Deploy.Tests;

/// <summary>The resources <c>bicep snapshot</c> predicts for one set of parameters: every module expanded, every
/// expression that needs no deployed resource evaluated. Values only known after deployment (a principal id, a host
/// name) stay as ARM expressions that name the resource they come from.</summary>
public sealed class DeploymentSnapshot
{
    public const string SubscriptionId = "11111111-1111-1111-1111-111111111111";
    public const string TenantId = "22222222-2222-2222-2222-222222222222";

    private DeploymentSnapshot(IReadOnlyList<JsonObject> resources, JsonObject outputs)
    {
        Resources = resources;
        Outputs = outputs;
    }

    public IReadOnlyList<JsonObject> Resources { get; }

    public JsonObject Outputs { get; }

    public static DeploymentSnapshot Parse(string json)
    {
        var root = JsonNode.Parse(json)?.AsObject() ?? throw new InvalidDataException("the snapshot is not a JSON object");
        var resources = root["predictedResources"]?.AsArray().Select(r => r!.AsObject()).ToList()
            ?? throw new InvalidDataException("the snapshot has no predictedResources");
        return new DeploymentSnapshot(resources, root["outputs"]?.AsObject() ?? []);
    }

    public IEnumerable<JsonObject> OfType(string type) =>
        Resources.Where(r => string.Equals((string?)r["type"], type, StringComparison.OrdinalIgnoreCase));

    /// <summary>The one resource of <paramref name="type"/> whose name starts with <paramref name="namePrefix"/>.</summary>
    public JsonObject Single(string type, string namePrefix = "")
    {
        var matches = OfType(type).Where(r => ((string?)r["name"] ?? "").StartsWith(namePrefix, StringComparison.Ordinal)).ToList();
        Assert.True(matches.Count == 1, $"expected one {type} named {namePrefix}*, found {matches.Count}: {string.Join(", ", matches.Select(m => (string?)m["name"]))}");
        return matches[0];
    }

    /// <summary>The model store's storage account: the one holding the <c>models</c> container.</summary>
    public JsonObject ModelStorage => StorageAccountWith(c => c == "models");

    /// <summary>The Functions host's storage account: the one holding the deployment package container.</summary>
    public JsonObject HostStorage => StorageAccountWith(c => c.StartsWith("app-package-", StringComparison.Ordinal));

    private JsonObject StorageAccountWith(Func<string, bool> container)
    {
        var accounts = OfType("Microsoft.Storage/storageAccounts/blobServices/containers")
            .Select(c => ((string)c["name"]!).Split('/'))
            .Where(parts => container(parts[^1]))
            .Select(parts => parts[0])
            .ToList();
        var account = Assert.Single(accounts);
        return Assert.Single(OfType("Microsoft.Storage/storageAccounts"), a => (string?)a["name"] == account);
    }

    public static string Id(JsonObject resource) => (string?)resource["id"] ?? throw new InvalidDataException("a resource has no id");

    /// <summary>The resource a role assignment (an extension resource) applies to.</summary>
    public static string ScopeOf(JsonObject extensionResource)
    {
        var id = Id(extensionResource);
        var unevaluated = Regex.Match(id, @"^\[extensionResourceId\('([^']+)',");
        if (unevaluated.Success)
        {
            return unevaluated.Groups[1].Value;
        }

        var at = id.IndexOf("/providers/Microsoft.Authorization/", StringComparison.OrdinalIgnoreCase);
        return at > 0 ? id[..at] : throw new InvalidDataException($"cannot tell the scope of {id}");
    }

    /// <summary>True when <paramref name="value"/> is the ARM expression reading <paramref name="property"/> of the
    /// deployed resource <paramref name="resourceId"/> (for example an identity's principalId).</summary>
    public static bool IsReferenceTo(string? value, string resourceId, string property) =>
        value is not null
        && Regex.IsMatch(value, $@"^\[reference\('{Regex.Escape(resourceId)}', '[^']+'\)\.{Regex.Escape(property)}\]$");

    public static string BuiltInRole(string roleDefinitionGuid) =>
        $"/subscriptions/{SubscriptionId}/providers/Microsoft.Authorization/roleDefinitions/{roleDefinitionGuid}";

    /// <summary>Environment variables of a container (or app settings of a site) as name → value.</summary>
    public static IReadOnlyDictionary<string, string> NameValues(JsonArray? pairs)
    {
        Assert.NotNull(pairs);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in pairs)
        {
            Assert.NotNull(pair);
            var name = (string?)pair["name"] ?? throw new InvalidDataException("a setting has no name");
            Assert.True(result.TryAdd(name, (string?)pair["value"] ?? ""), $"setting {name} appears twice");
        }

        return result;
    }
}
