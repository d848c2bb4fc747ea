using System.ComponentModel.DataAnnotations;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Azure.Models;

/// <summary>Settings of the Blob model store (section <c>Inference:ModelStore:Blob</c>).</summary>
/// <remarks>Set exactly one of <see cref="ConnectionString"/> (Azurite, or an account key / SAS) and
/// <see cref="ServiceUri"/> (Azure, authenticated with <c>DefaultAzureCredential</c>).</remarks>
public sealed class BlobModelStoreOptions : IValidatableObject
{
    public const string Section = "Inference:ModelStore:Blob";

    /// <summary>A storage connection string, e.g. Azurite's <c>devstoreaccount1</c> string.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>The account's blob endpoint, e.g. <c>https://ACCOUNT.blob.core.windows.net</c>; signs in with
    /// <c>DefaultAzureCredential</c> (managed identity in Azure, the developer's login locally).</summary>
    public string? ServiceUri { get; set; }

    /// <summary>Client id of a user-assigned managed identity (with <see cref="ServiceUri"/>); when empty,
    /// <c>DefaultAzureCredential</c> reads <c>AZURE_CLIENT_ID</c>.</summary>
    public string? ManagedIdentityClientId { get; set; }

    public string Container { get; set; } = "models";

    /// <summary>Retries of a failed storage call before the store reports <c>Unavailable</c>.</summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>First retry delay; later ones back off exponentially.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(0.5);

    /// <summary>Longest wait for one network operation (a block of an upload or download).</summary>
    public TimeSpan NetworkTimeout { get; set; } = TimeSpan.FromSeconds(100);

    /// <summary>The rules of <see cref="BlobModelStoreOptionsValidator.Failures"/>, run at start-up by the source-generated validator.</summary>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext) =>
        BlobModelStoreOptionsValidator.Failures(this).Select(failure => new ValidationResult(failure));
}

/// <summary>Validates <see cref="BlobModelStoreOptions"/> at start-up, naming the settings in every message.</summary>
[OptionsValidator]
public sealed partial class BlobModelStoreOptionsValidator : IValidateOptions<BlobModelStoreOptions>
{
    private const string Prefix = BlobModelStoreOptions.Section + ":";

    /// <summary>What is wrong with <paramref name="options"/>; empty when nothing. Never echoes a secret.</summary>
    public static IReadOnlyList<string> Failures(BlobModelStoreOptions options)
    {
        var failures = new List<string>();
        var hasConnectionString = !string.IsNullOrWhiteSpace(options.ConnectionString);
        var hasServiceUri = !string.IsNullOrWhiteSpace(options.ServiceUri);
        if (hasConnectionString == hasServiceUri)
        {
            failures.Add(
                $"Inference:ModelStore:Provider is Blob, so set exactly one of {Prefix}ConnectionString (a storage connection string) " +
                $"or {Prefix}ServiceUri (https://ACCOUNT.blob.core.windows.net, signed in with DefaultAzureCredential); " +
                (hasConnectionString ? "both are set" : "neither is set"));
        }
        else if (hasConnectionString)
        {
            try
            {
                _ = new BlobServiceClient(options.ConnectionString);
            }
            catch (Exception ex) when (ex is FormatException or ArgumentException or InvalidOperationException)
            {
                // The value holds a key: say what is wrong, never what it is.
                failures.Add($"{Prefix}ConnectionString is not a valid storage connection string ({ex.GetType().Name})");
            }
        }
        else if (!Uri.TryCreate(options.ServiceUri!.Trim(), UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttps)
        {
            // Azure.Core refuses to send a bearer token over plain http, so an http endpoint could never authenticate.
            failures.Add($"{Prefix}ServiceUri must be an absolute https URI such as https://ACCOUNT.blob.core.windows.net (tokens are never sent over http; use {Prefix}ConnectionString for Azurite)");
        }
        else if (!string.IsNullOrEmpty(uri.Query))
        {
            failures.Add($"{Prefix}ServiceUri must not carry a query (a SAS token); put a SAS in {Prefix}ConnectionString instead");
        }

        if (!IsContainerName(options.Container))
        {
            failures.Add($"{Prefix}Container must be 3-63 characters of lower-case letters, digits and single hyphens, starting and ending with a letter or digit; got '{options.Container}'");
        }

        if (options.MaxRetries is < 0 or > 20)
        {
            failures.Add($"{Prefix}MaxRetries must be between 0 and 20");
        }

        if (options.RetryDelay <= TimeSpan.Zero)
        {
            failures.Add($"{Prefix}RetryDelay must be positive");
        }

        if (options.NetworkTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{Prefix}NetworkTimeout must be positive");
        }

        return failures;
    }

    private static bool IsContainerName(string? name) =>
        name is { Length: >= 3 and <= 63 }
        && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-')
        && name[0] != '-' && name[^1] != '-'
        && !name.Contains("--", StringComparison.Ordinal);
}
