using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace ServerlessInference.Security;

/// <summary>A stored API key: its id, its tenant, whether it is an admin key, its limits (null: the defaults of
/// <see cref="AuthOptions"/>), and the SHA-256 of the key. The key itself is shown once, when it is made, and never kept.</summary>
public sealed record ApiKey
{
    public required string Id { get; init; }

    public required string Tenant { get; init; }

    /// <summary>SHA-256 of the whole key as 64 lowercase hex digits.</summary>
    public required string Sha256 { get; init; }

    public bool Admin { get; init; }

    public double? RequestsPerSecond { get; init; }

    public int? Burst { get; init; }

    public int? MaxConcurrentJobs { get; init; }

    public DateTimeOffset? CreatedAt { get; init; }
}

/// <summary>The key format and its checks. A key is <c>si_{id}_{secret}</c>: the id (16 hex digits) finds the stored
/// record, the secret (32 random bytes, base64url) makes it unguessable, and the record's hash of the whole key is
/// compared in constant time.</summary>
public static class ApiKeys
{
    private const string Prefix = "si_";

    /// <summary>A new key for <paramref name="tenant"/>, and its record to store.</summary>
    public static (string Key, ApiKey Record) Create(string tenant, bool admin, double? requestsPerSecond, int? burst, int? maxConcurrentJobs, DateTimeOffset now)
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var secret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var key = Prefix + id + "_" + secret;
        return (key, new ApiKey
        {
            Id = id,
            Tenant = tenant,
            Sha256 = Hash(key),
            Admin = admin,
            RequestsPerSecond = requestsPerSecond,
            Burst = burst,
            MaxConcurrentJobs = maxConcurrentJobs,
            CreatedAt = now,
        });
    }

    /// <summary>SHA-256 of <paramref name="key"/> (UTF-8) as lowercase hex.</summary>
    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>The id a key claims, or null when it is not shaped like a key.</summary>
    public static string? IdOf(string key)
    {
        if (!key.StartsWith(Prefix, StringComparison.Ordinal) || key.Length < Prefix.Length + 16 + 2 || key[Prefix.Length + 16] != '_')
        {
            return null;
        }

        var id = key.Substring(Prefix.Length, 16);
        return IsValidId(id) ? id : null;
    }

    /// <summary>Whether <paramref name="key"/> is the key <paramref name="record"/> was made from, in time independent of
    /// where the hashes differ.</summary>
    public static bool Matches(string key, ApiKey record)
    {
        if (!IsValidHash(record.Sha256))
        {
            return false;
        }

        Span<byte> expected = stackalloc byte[32];
        Convert.FromHexString(record.Sha256, expected, out _, out _);
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(key)), expected);
    }

    public static bool IsValidId(string id) => id.Length == 16 && id.All(char.IsAsciiHexDigitLower);

    public static bool IsValidHash(string hash) => hash.Length == 64 && hash.All(char.IsAsciiHexDigit);

    /// <summary>The configuration lines that hold <paramref name="record"/> (for hosts whose keys live in configuration).</summary>
    public static IEnumerable<string> ConfigurationLines(ApiKey record)
    {
        var at = $"{AuthOptions.Section}:Keys:{record.Id}";
        yield return $"{at}:Sha256={record.Sha256}";
        yield return $"{at}:Tenant={record.Tenant}";
        if (record.Admin)
        {
            yield return $"{at}:Admin=true";
        }

        if (record.RequestsPerSecond is { } rps)
        {
            yield return $"{at}:RequestsPerSecond={rps.ToString(CultureInfo.InvariantCulture)}";
        }

        if (record.Burst is { } burst)
        {
            yield return $"{at}:Burst={burst.ToString(CultureInfo.InvariantCulture)}";
        }

        if (record.MaxConcurrentJobs is { } jobs)
        {
            yield return $"{at}:MaxConcurrentJobs={jobs.ToString(CultureInfo.InvariantCulture)}";
        }
    }
}
