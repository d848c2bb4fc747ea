using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Azure.Scaling;

/// <summary>Settings of the Container Apps orchestrator (section <c>Inference:Orchestrator:ContainerApps</c>): which
/// container app runs the workers, and how to reach Azure Resource Manager.</summary>
public sealed class ContainerAppsOrchestratorOptions : IValidatableObject
{
    public const string Section = "Inference:Orchestrator:ContainerApps";

    /// <summary>The ARM api-version of <c>Microsoft.App/containerApps</c> this orchestrator speaks.</summary>
    public const string ApiVersion = "2025-07-01";

    /// <summary>The subscription id (a GUID) holding the worker container app.</summary>
    public string? SubscriptionId { get; set; }

    public string? ResourceGroup { get; set; }

    /// <summary>The worker container app's name.</summary>
    public string? AppName { get; set; }

    /// <summary>Azure Resource Manager's endpoint; a sovereign cloud has its own (and needs <c>AZURE_AUTHORITY_HOST</c>).
    /// Tokens are requested for <c>{ManagementEndpoint}/.default</c>.</summary>
    public string ManagementEndpoint { get; set; } = "https://management.azure.com";

    /// <summary>Client id of a user-assigned managed identity; when empty, <c>DefaultAzureCredential</c> reads
    /// <c>AZURE_CLIENT_ID</c>.</summary>
    public string? ManagedIdentityClientId { get; set; }

    /// <summary>Retries of a call answered 429, 5xx or not at all, before the call fails (and the scaler tries again
    /// on its next tick).</summary>
    public int MaxRetries { get; set; } = 4;

    /// <summary>First retry delay when ARM sends no <c>Retry-After</c>; later ones double.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between two tries. A <c>Retry-After</c> longer than this is not waited out inside one
    /// scaler tick: the call fails, and calls before that instant fail at once without reaching ARM.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The container app's ARM URL, with the api-version. Valid only for options that passed validation.</summary>
    public Uri AppUri() => new(
        $"{ManagementEndpoint.Trim().TrimEnd('/')}/subscriptions/{SubscriptionId!.Trim()}/resourceGroups/{Uri.EscapeDataString(ResourceGroup!.Trim())}" +
        $"/providers/Microsoft.App/containerApps/{AppName!.Trim()}?api-version={ApiVersion}");

    /// <summary>The token scope for ARM: <c>{ManagementEndpoint}/.default</c>.</summary>
    public string Scope() => $"{ManagementEndpoint.Trim().TrimEnd('/')}/.default";

    /// <summary>The rules of <see cref="ContainerAppsOrchestratorOptionsValidator.Failures"/>, run at start-up by the source-generated validator.</summary>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext) =>
        ContainerAppsOrchestratorOptionsValidator.Failures(this).Select(failure => new ValidationResult(failure));
}

/// <summary>Validates <see cref="ContainerAppsOrchestratorOptions"/> at start-up, naming the full setting in every message.</summary>
[OptionsValidator]
public sealed partial class ContainerAppsOrchestratorOptionsValidator : IValidateOptions<ContainerAppsOrchestratorOptions>
{
    private const string Prefix = ContainerAppsOrchestratorOptions.Section + ":";

    /// <summary>What is wrong with <paramref name="options"/>; empty when nothing.</summary>
    public static IReadOnlyList<string> Failures(ContainerAppsOrchestratorOptions options)
    {
        var failures = new List<string>();
        if (!Guid.TryParse(options.SubscriptionId?.Trim(), out _))
        {
            failures.Add($"{Prefix}SubscriptionId must be the subscription's id (a GUID) when Inference:Orchestrator:Provider is ContainerApps; got '{options.SubscriptionId}'");
        }

        if (!IsResourceGroupName(options.ResourceGroup?.Trim()))
        {
            failures.Add($"{Prefix}ResourceGroup must name the worker app's resource group (1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'); got '{options.ResourceGroup}'");
        }

        if (!IsContainerAppName(options.AppName?.Trim()))
        {
            failures.Add($"{Prefix}AppName must name the worker container app (2-32 lower-case letters, digits and single hyphens, starting with a letter and ending with a letter or digit); got '{options.AppName}'");
        }

        if (!Uri.TryCreate(options.ManagementEndpoint?.Trim(), UriKind.Absolute, out var endpoint) || endpoint.Scheme != Uri.UriSchemeHttps
            || !string.IsNullOrEmpty(endpoint.Query) || endpoint.AbsolutePath.Trim('/').Length > 0)
        {
            // A bearer token must never travel over plain http.
            failures.Add($"{Prefix}ManagementEndpoint must be an https origin such as https://management.azure.com; got '{options.ManagementEndpoint}'");
        }

        if (options.MaxRetries is < 0 or > 10)
        {
            failures.Add($"{Prefix}MaxRetries must be between 0 and 10");
        }

        if (options.RetryDelay <= TimeSpan.Zero)
        {
            failures.Add($"{Prefix}RetryDelay must be positive");
        }

        if (options.MaxRetryDelay < options.RetryDelay)
        {
            failures.Add($"{Prefix}MaxRetryDelay must be at least {Prefix}RetryDelay");
        }

        return failures;
    }

    private static bool IsResourceGroupName(string? name) =>
        name is { Length: >= 1 and <= 90 }
        && name.All(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' or '(' or ')')
        && name[^1] != '.';

    private static bool IsContainerAppName(string? name) =>
        name is { Length: >= 2 and <= 32 }
        && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-')
        && name[0] is >= 'a' and <= 'z'
        && name[^1] != '-'
        && !name.Contains("--", StringComparison.Ordinal);
}
