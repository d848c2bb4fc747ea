using Microsoft.Extensions.Primitives;

namespace ServerlessInference.Webhooks;

/// <summary>Where a request names its webhook: OIP <c>parameters.webhook</c> (as Replicate's <c>webhook</c> field) or the
/// <c>Inference-Webhook</c> header (named like Triton's <c>Inference-Header-Content-Length</c>; no standard header exists).</summary>
public static class WebhookRequests
{
    public const string Header = "Inference-Webhook";

    public const string Parameter = "webhook";

    /// <summary>The request's webhook URL, validated, or null when it names none. Removes the parameter, so it never
    /// reaches the engine or the queue.</summary>
    /// <exception cref="InferenceException">BadRequest: not a string, not an absolute http/https URL, too long, with
    /// credentials, header and parameter disagree, or webhooks are not configured here.</exception>
    public static string? Take(InferenceRequest request, StringValues header, WebhookOptions? options)
    {
        string? fromParameter = null;
        if (request.Parameters is { } parameters && parameters.Remove(Parameter, out var value))
        {
            fromParameter = value as string ?? throw Bad($"parameters.{Parameter} must be a string (an http or https URL)");
        }

        if (header.Count > 1)
        {
            throw Bad($"the {Header} header may appear once");
        }

        var fromHeader = header.Count == 1 ? header[0] : null;
        if (fromParameter is not null && fromHeader is not null && fromParameter != fromHeader)
        {
            throw Bad($"parameters.{Parameter} and the {Header} header name different URLs");
        }

        var url = fromParameter ?? fromHeader;
        if (url is null)
        {
            return null;
        }

        if (options is not { Enabled: true })
        {
            throw Bad($"this server does not send webhooks ({WebhookOptions.Section}:Secret is not set)");
        }

        if (url.Length > options.MaxUrlLength)
        {
            throw Bad($"the webhook URL is {url.Length} characters; at most {options.MaxUrlLength}");
        }

        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || string.IsNullOrEmpty(uri.Host))
        {
            throw Bad("the webhook must be an absolute http or https URL");
        }

        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            throw Bad("the webhook URL must not carry credentials (user:password@); put a token in its path or query");
        }

        return uri.AbsoluteUri;
    }

    private static InferenceException Bad(string message) => new(InferenceError.BadRequest, message);
}
