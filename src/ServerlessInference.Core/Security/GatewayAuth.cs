using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ServerlessInference.Jobs;

namespace ServerlessInference.Security;

/// <summary>Who is calling: a key's tenant and limits, or the one anonymous tenant of a host that runs open.</summary>
public sealed record Caller(string? Tenant, string? KeyId, bool Admin, double RequestsPerSecond, int Burst, int MaxConcurrentJobs)
{
    /// <summary>The caller of a host without keys: one tenant (null), admin, no limits.</summary>
    public static Caller Anonymous { get; } = new(null, null, true, 0, 0, 0);

    /// <summary>Whether this caller may see <paramref name="record"/>: only the tenant that submitted it.</summary>
    public bool Owns(JobRecord record) => string.Equals(record.Tenant, Tenant, StringComparison.Ordinal);
}

/// <summary>Whether a host without keys may answer callers without a key. The DevHost decides at start from the
/// addresses it listens on (the loopback rule); a host that does not decide (the Functions app, whose function keys
/// guard every non-health route) allows it.</summary>
public sealed class AnonymousAccess
{
    private volatile bool _allowed = true;

    public bool Allowed => _allowed;

    public void Set(bool allowed) => _allowed = allowed;
}

/// <summary>The gateway's check of who may call, run by every handler of <c>GatewayHttp</c> and <c>GenerationHttp</c>
/// (so the DevHost and the Functions app check alike): the key from <c>Authorization: Bearer</c> or <c>api-key</c>, its
/// request rate, and admin for <c>/status</c> and <c>/metrics</c>.</summary>
public static class GatewayAuth
{
    public const string ApiKeyHeader = "api-key";

    /// <summary>The caller of a route that needs a key (inference, jobs, metadata). Takes one request from the key's
    /// rate. Throws <see cref="InferenceException"/>: Unauthorized (401, with <c>WWW-Authenticate: Bearer</c>) or
    /// RateLimited (429 with Retry-After).</summary>
    public static async ValueTask<Caller> AuthorizeAsync(HttpContext context)
    {
        if (context.Items.TryGetValue(typeof(Caller), out var known) && known is Caller same)
        {
            return same;
        }

        var caller = await AuthenticateAsync(context).ConfigureAwait(false);
        if (caller.KeyId is { } keyId && caller.RequestsPerSecond > 0)
        {
            var limiter = context.RequestServices.GetRequiredService<RequestRateLimiter>();
            if (!limiter.TryTake(keyId, caller.RequestsPerSecond, caller.Burst, out var retryAfter))
            {
                throw new InferenceException(InferenceError.RateLimited, string.Create(CultureInfo.InvariantCulture,
                    $"this key's request rate is exceeded ({caller.RequestsPerSecond:0.###} requests/s, burst {caller.Burst}); retry after {retryAfter} s"))
                {
                    RetryAfterSeconds = retryAfter,
                };
            }
        }

        context.Items[typeof(Caller)] = caller;
        return caller;
    }

    /// <summary>Admits <c>/status</c> and <c>/metrics</c>: on the management port anyone (it is not served publicly),
    /// elsewhere an admin key (or anyone when the host runs open). Throws Unauthorized (401) or Forbidden (403).</summary>
    public static async ValueTask AuthorizeAdminAsync(HttpContext context)
    {
        if (IsManagementRequest(context))
        {
            return;
        }

        var caller = await AuthorizeAsync(context).ConfigureAwait(false);
        if (!caller.Admin)
        {
            throw new InferenceException(InferenceError.Forbidden, "this key is not an admin key; /status and /metrics need one");
        }
    }

    /// <summary>Whether the request came in on the management port (<see cref="AuthOptions.ManagementUrl"/>).</summary>
    public static bool IsManagementRequest(HttpContext context) =>
        context.RequestServices.GetService<IOptions<AuthOptions>>()?.Value.ManagementPort is int port && context.Connection.LocalPort == port;

    /// <summary>The key sent as <c>Authorization: Bearer {key}</c> or <c>api-key: {key}</c>, or null.</summary>
    public static string? ReadKey(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            var token = authorization["Bearer ".Length..].Trim();
            return token.Length > 0 ? token : null;
        }

        var apiKey = request.Headers[ApiKeyHeader].ToString().Trim();
        return apiKey.Length > 0 ? apiKey : null;
    }

    private static async ValueTask<Caller> AuthenticateAsync(HttpContext context)
    {
        var services = context.RequestServices;
        var store = services.GetRequiredService<IApiKeyStore>();
        var options = services.GetRequiredService<IOptions<AuthOptions>>().Value;
        var key = ReadKey(context.Request);
        var cancellationToken = context.RequestAborted;
        if (key is not null && ApiKeys.IdOf(key) is { } id && await store.GetAsync(id, cancellationToken).ConfigureAwait(false) is { } record && ApiKeys.Matches(key, record))
        {
            var rate = record.RequestsPerSecond ?? options.RequestsPerSecond;
            return new Caller(record.Tenant, record.Id, record.Admin, rate,
                record.Burst ?? options.Burst ?? (int)Math.Max(1, Math.Ceiling(rate * 2)),
                record.MaxConcurrentJobs ?? options.MaxConcurrentJobs);
        }

        // Open only while no key exists at all and the host allows it; a key sent to an open host (an OpenAI client
        // must send one) is then ignored.
        if (services.GetRequiredService<AnonymousAccess>().Allowed && !await store.AnyAsync(cancellationToken).ConfigureAwait(false))
        {
            return Caller.Anonymous;
        }

        context.Response.Headers.WWWAuthenticate = "Bearer";
        throw new InferenceException(InferenceError.Unauthorized, key is null
            ? "missing API key: send it as 'Authorization: Bearer <key>' or 'api-key: <key>'"
            : "invalid API key");
    }
}
