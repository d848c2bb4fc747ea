using System.ComponentModel.DataAnnotations;
using System.Net;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Webhooks;

/// <summary>Settings of job webhooks (section <c>Inference:Webhooks</c>): the signing secret, delivery retries and the
/// targets a delivery may reach.</summary>
public sealed class WebhookOptions : IValidatableObject
{
    public const string Section = "Inference:Webhooks";

    /// <summary>The Standard Webhooks signing secret, <c>whsec_</c> + base64 of 24 to 64 random bytes. Empty: webhooks are
    /// off and a request that asks for one is refused (400).</summary>
    public string? Secret { get; set; }

    /// <summary>Deliveries of one webhook before it is dead-lettered (the first included), 1 to 50.</summary>
    public int MaxAttempts { get; set; } = 6;

    /// <summary>The wait before the second attempt; each later wait doubles, up to <see cref="MaxDelay"/>, and is
    /// jittered to between half and all of that.</summary>
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromSeconds(2);

    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>One attempt's limit: connect, send and the receiver's answer.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How often the dispatcher looks for due deliveries and for jobs that ended.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest webhook URL a request may carry, 16 to 8192.</summary>
    public int MaxUrlLength { get; set; } = 2048;

    /// <summary>Host names a delivery may reach whatever they resolve to (exact, case-insensitive), for private deployments.</summary>
    public List<string> AllowedHosts { get; set; } = [];

    /// <summary>Address ranges (CIDR, e.g. <c>127.0.0.0/8</c>, <c>10.1.0.0/16</c>, <c>fd00::/8</c>) a delivery may connect
    /// to although they are private, loopback, link-local, ... (refused by default: no SSRF into the platform's network).</summary>
    public List<string> AllowedNetworks { get; set; } = [];

    public bool Enabled => !string.IsNullOrEmpty(Secret);

    /// <summary>The secret's key bytes (after <c>whsec_</c>), or null when it is not valid base64.</summary>
    internal static byte[]? KeyOf(string secret)
    {
        const string prefix = "whsec_";
        if (!secret.StartsWith(prefix, StringComparison.Ordinal))
        {
            return null;
        }

        try
        {
            return Convert.FromBase64String(secret[prefix.Length..]);
        }
        catch (FormatException)
        {
            return null;
        }
    }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!string.IsNullOrEmpty(Secret) && KeyOf(Secret) is not { Length: >= 24 and <= 64 })
        {
            yield return new ValidationResult(
                $"{Section}:Secret must be 'whsec_' followed by the base64 of 24 to 64 random bytes (Standard Webhooks), e.g. 'whsec_' + `openssl rand -base64 32`",
                [nameof(Secret)]);
        }

        // Checked here rather than with [Range], whose message names the property, not the setting.
        if (MaxAttempts is < 1 or > 50)
        {
            yield return new ValidationResult($"{Section}:MaxAttempts must be between 1 and 50", [nameof(MaxAttempts)]);
        }

        if (MaxUrlLength is < 16 or > 8192)
        {
            yield return new ValidationResult($"{Section}:MaxUrlLength must be between 16 and 8192", [nameof(MaxUrlLength)]);
        }

        if (BaseDelay <= TimeSpan.Zero || MaxDelay < BaseDelay)
        {
            yield return new ValidationResult($"{Section}:BaseDelay must be positive and {Section}:MaxDelay at least BaseDelay", [nameof(BaseDelay), nameof(MaxDelay)]);
        }

        if (Timeout <= TimeSpan.Zero || PollInterval <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:Timeout and {Section}:PollInterval must be positive", [nameof(Timeout), nameof(PollInterval)]);
        }

        foreach (var network in AllowedNetworks)
        {
            if (!IPNetwork.TryParse(network, out _))
            {
                yield return new ValidationResult($"{Section}:AllowedNetworks has '{network}', which is not a CIDR range (e.g. 127.0.0.0/8)", [nameof(AllowedNetworks)]);
            }
        }
    }
}

[OptionsValidator]
public sealed partial class WebhookOptionsValidator : IValidateOptions<WebhookOptions>;
