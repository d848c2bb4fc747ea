using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Security;

/// <summary>Who may call the gateway (section <c>Inference:Auth</c>): API keys held in configuration (when Redis does not
/// hold them), the default limits of a key, whether a host bound beyond loopback may run without keys, and the management
/// address of <c>/status</c> and <c>/metrics</c>.</summary>
public sealed class AuthOptions : IValidatableObject
{
    public const string Section = "Inference:Auth";

    /// <summary>The setting that lets a host bound to a non-loopback address run without keys.</summary>
    public const string AllowAnonymousKey = Section + ":AllowAnonymous";

    /// <summary>Run without keys even when bound to a non-loopback address (logged as a warning at every start). On
    /// loopback only, a host without keys runs open anyway.</summary>
    public bool AllowAnonymous { get; set; }

    /// <summary>Keys held in configuration, by key id: <c>Inference:Auth:Keys:{id}:Sha256</c>, <c>:Tenant</c>,
    /// <c>:Admin</c>, and optional limits. Ignored where Redis holds the keys. <c>keys create</c> prints the lines.</summary>
    public Dictionary<string, ApiKeyOptions> Keys { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Requests per second a key may make on average, unless the key says otherwise (0 = no limit).</summary>
    public double RequestsPerSecond { get; set; } = 50;

    /// <summary>Requests a key may make at once above its rate (the token bucket's size; default twice the rate).</summary>
    public int? Burst { get; set; }

    /// <summary>Jobs a key may have accepted and not yet ended, unless the key says otherwise (0 = no limit).</summary>
    public int MaxConcurrentJobs { get; set; } = 100;

    /// <summary>When set (e.g. <c>http://127.0.0.1:9090</c>), <c>/status</c> and <c>/metrics</c> are served on this
    /// address only, without a key, and not on the public address at all. Unset, they need an admin key.</summary>
    public string? ManagementUrl { get; set; }

    /// <summary>The port of <see cref="ManagementUrl"/>, or null.</summary>
    public int? ManagementPort => ManagementUrl is { Length: > 0 } url && ListenAddresses.TryParse(url, out _, out var port) ? port : null;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (RequestsPerSecond < 0 || double.IsNaN(RequestsPerSecond) || double.IsInfinity(RequestsPerSecond))
        {
            yield return new ValidationResult($"{Section}:RequestsPerSecond must be 0 (no limit) or positive", [nameof(RequestsPerSecond)]);
        }

        if (Burst is < 1)
        {
            yield return new ValidationResult($"{Section}:Burst must be at least 1", [nameof(Burst)]);
        }

        if (MaxConcurrentJobs < 0)
        {
            yield return new ValidationResult($"{Section}:MaxConcurrentJobs must be 0 (no limit) or positive", [nameof(MaxConcurrentJobs)]);
        }

        if (ManagementUrl is { Length: > 0 } management && !ListenAddresses.TryParse(management, out _, out _))
        {
            yield return new ValidationResult($"{Section}:ManagementUrl must be an http(s) URL with a port, like http://127.0.0.1:9090, not '{management}'", [nameof(ManagementUrl)]);
        }

        foreach (var (id, key) in Keys)
        {
            if (!ApiKeys.IsValidId(id))
            {
                yield return new ValidationResult($"{Section}:Keys:{id} is not a key id (16 lowercase hex digits, as keys create makes them)", [nameof(Keys)]);
            }

            if (key.Sha256 is null || !ApiKeys.IsValidHash(key.Sha256))
            {
                yield return new ValidationResult($"{Section}:Keys:{id}:Sha256 must be the key's SHA-256 as 64 hex digits", [nameof(Keys)]);
            }

            if (string.IsNullOrWhiteSpace(key.Tenant))
            {
                yield return new ValidationResult($"{Section}:Keys:{id}:Tenant must name the key's tenant", [nameof(Keys)]);
            }

            if (key.RequestsPerSecond is < 0 || key.Burst is < 1 || key.MaxConcurrentJobs is < 0)
            {
                yield return new ValidationResult($"{Section}:Keys:{id}: RequestsPerSecond and MaxConcurrentJobs must be 0 or positive, Burst at least 1", [nameof(Keys)]);
            }
        }
    }
}

/// <summary>One key held in configuration (<c>Inference:Auth:Keys:{id}</c>).</summary>
public sealed class ApiKeyOptions
{
    /// <summary>SHA-256 of the whole key, as 64 hex digits; the key itself is never stored.</summary>
    public string? Sha256 { get; set; }

    public string? Tenant { get; set; }

    /// <summary>An admin key may read <c>/status</c> and <c>/metrics</c>.</summary>
    public bool Admin { get; set; }

    public double? RequestsPerSecond { get; set; }

    public int? Burst { get; set; }

    public int? MaxConcurrentJobs { get; set; }
}

[OptionsValidator]
public sealed partial class AuthOptionsValidator : IValidateOptions<AuthOptions>;
