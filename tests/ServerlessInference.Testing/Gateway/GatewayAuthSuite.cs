using System.Globalization;
using ServerlessInference.Security;

namespace ServerlessInference.Testing.Gateway;

/// <summary>Known keys of the keyed host of <see cref="GatewayBehaviourSuite"/>: their settings hold only hashes.</summary>
public static class TestKeys
{
    /// <summary>Tenant <c>acme</c>.</summary>
    public const string Acme = "si_a000000000000001_acme-one-secret";

    /// <summary>A second key of tenant <c>acme</c>.</summary>
    public const string AcmeSecond = "si_a000000000000002_acme-two-secret";

    /// <summary>Tenant <c>beta</c>.</summary>
    public const string Beta = "si_b000000000000001_beta-secret";

    /// <summary>An admin key (tenant <c>ops</c>).</summary>
    public const string Admin = "si_c000000000000001_admin-secret";

    /// <summary>Tenant <c>gamma</c>, one concurrent job.</summary>
    public const string OneJob = "si_d000000000000001_one-job-secret";

    /// <summary>Tenant <c>delta</c>: two requests, then one per 100 s.</summary>
    public const string Slow = "si_e000000000000001_slow-secret";

    /// <summary>Settings of a host with these keys in configuration and no worker ever starting (jobs stay queued).</summary>
    public static IReadOnlyDictionary<string, string?> Settings { get; } = Build();

    private static Dictionary<string, string?> Build()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Inference:Scaling:ActivationThreshold"] = "1000",
        };
        void Add(string key, string tenant, bool admin = false, int? maxJobs = null, double? rps = null, int? burst = null)
        {
            var at = "Inference:Auth:Keys:" + ApiKeys.IdOf(key);
            settings[at + ":Sha256"] = ApiKeys.Hash(key);
            settings[at + ":Tenant"] = tenant;
            settings[at + ":Admin"] = admin ? "true" : "false";
            if (maxJobs is { } jobs)
            {
                settings[at + ":MaxConcurrentJobs"] = jobs.ToString(CultureInfo.InvariantCulture);
            }

            if (rps is { } rate)
            {
                settings[at + ":RequestsPerSecond"] = rate.ToString(CultureInfo.InvariantCulture);
                settings[at + ":Burst"] = burst!.Value.ToString(CultureInfo.InvariantCulture);
            }
        }

        Add(Acme, "acme");
        Add(AcmeSecond, "acme");
        Add(Beta, "beta");
        Add(Admin, "ops", admin: true);
        Add(OneJob, "gamma", maxJobs: 1);
        Add(Slow, "delta", rps: 0.01, burst: 2);
        return settings;
    }

    /// <summary>This request sent with <paramref name="key"/> as <c>Authorization: Bearer</c> (or as <c>api-key</c>).</summary>
    public static GatewayRequest With(this GatewayRequest request, string key, bool apiKeyHeader = false)
    {
        ArgumentNullException.ThrowIfNull(request);
        var headers = new Dictionary<string, string>(request.Headers, StringComparer.OrdinalIgnoreCase)
        {
            [apiKeyHeader ? "api-key" : "Authorization"] = apiKeyHeader ? key : "Bearer " + key,
        };
        return request with { Headers = headers };
    }
}
