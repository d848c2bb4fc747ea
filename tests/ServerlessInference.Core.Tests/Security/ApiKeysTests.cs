using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Security;

namespace ServerlessInference.Tests.Security;

public sealed class ApiKeysTests
{
    [Fact]
    public void Create_KeyMatchesItsRecordOnly_AndTheRecordHoldsNoKey()
    {
        var (key, record) = ApiKeys.Create("acme", admin: true, 5, 10, 3, DateTimeOffset.UnixEpoch);
        var (other, _) = ApiKeys.Create("acme", admin: false, null, null, null, DateTimeOffset.UnixEpoch);

        Assert.True(ApiKeys.Matches(key, record));
        Assert.False(ApiKeys.Matches(other, record));
        Assert.False(ApiKeys.Matches(key[..^1] + (key[^1] == 'A' ? 'B' : 'A'), record));
        Assert.Equal(record.Id, ApiKeys.IdOf(key));
        Assert.Equal(ApiKeys.Hash(key), record.Sha256);
        Assert.DoesNotContain(key[20..], record.Sha256, StringComparison.Ordinal);
        Assert.Equal(("acme", true, 5d, 10, 3), (record.Tenant, record.Admin, record.RequestsPerSecond!.Value, record.Burst!.Value, record.MaxConcurrentJobs!.Value));
    }

    [Theory]
    [InlineData("")]
    [InlineData("sk-something")]
    [InlineData("si_0123_short")]
    [InlineData("si_0123456789ABCDEF_secret")]
    public void IdOf_NotAKey_IsNull(string key) => Assert.Null(ApiKeys.IdOf(key));

    [Fact]
    public void ConfigurationLines_HoldTheHashTenantAdminAndLimits()
    {
        var (_, record) = ApiKeys.Create("acme", admin: true, 2.5, null, 4, DateTimeOffset.UnixEpoch);

        var lines = ApiKeys.ConfigurationLines(record).ToList();

        Assert.Equal(
            [
                $"Inference:Auth:Keys:{record.Id}:Sha256={record.Sha256}",
                $"Inference:Auth:Keys:{record.Id}:Tenant=acme",
                $"Inference:Auth:Keys:{record.Id}:Admin=true",
                $"Inference:Auth:Keys:{record.Id}:RequestsPerSecond=2.5",
                $"Inference:Auth:Keys:{record.Id}:MaxConcurrentJobs=4",
            ],
            lines);
    }
}

public sealed class ListenAddressesTests
{
    [Theory]
    [InlineData("http://127.0.0.1:7071", true)]
    [InlineData("http://127.0.0.2:80", true)]
    [InlineData("http://localhost:5000", true)]
    [InlineData("https://LOCALHOST:5001/", true)]
    [InlineData("http://[::1]:8080", true)]
    [InlineData("http://0.0.0.0:8080", false)]
    [InlineData("http://[::]:8080", false)]
    [InlineData("http://+:80", false)]
    [InlineData("http://*:80", false)]
    [InlineData("http://example.com:80", false)]
    [InlineData("http://10.1.2.3:80", false)]
    [InlineData("not a url", false)]
    public void IsLoopback_ReadsKestrelAddresses(string url, bool loopback) => Assert.Equal(loopback, ListenAddresses.IsLoopback(url));

    [Fact]
    public void Configured_ReadsUrlsElsePortsAndKestrelEndpoints()
    {
        var withUrls = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["urls"] = "http://127.0.0.1:1; http://0.0.0.0:2",
            ["http_ports"] = "3",
            ["Kestrel:Endpoints:Admin:Url"] = "http://127.0.0.1:4",
        }).Build();
        var withPorts = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["http_ports"] = "8080" }).Build();

        Assert.Equal(["http://127.0.0.1:1", "http://0.0.0.0:2", "http://127.0.0.1:4"], ListenAddresses.Configured(withUrls));
        Assert.Equal(["http://*:8080"], ListenAddresses.Configured(withPorts));
    }
}

public sealed class RequestRateLimiterTests
{
    [Fact]
    public void TryTake_BurstThenEmpty_RefusesWithRetryAfterUntilTheRateRefills()
    {
        var time = new FakeTimeProvider();
        var limiter = new RequestRateLimiter(time);

        Assert.True(limiter.TryTake("k", rate: 0.5, burst: 3, out _));
        Assert.True(limiter.TryTake("k", 0.5, 3, out _));
        Assert.True(limiter.TryTake("k", 0.5, 3, out _));
        Assert.False(limiter.TryTake("k", 0.5, 3, out var retryAfter));
        Assert.Equal(2, retryAfter); // one token at 0.5/s

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(limiter.TryTake("k", 0.5, 3, out retryAfter));
        Assert.Equal(1, retryAfter);

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(limiter.TryTake("k", 0.5, 3, out _));
        Assert.True(limiter.TryTake("other", 0.5, 3, out _)); // buckets are per key
    }

    [Fact]
    public void TryTake_LongIdle_RefillsOnlyUpToTheBurst()
    {
        var time = new FakeTimeProvider();
        var limiter = new RequestRateLimiter(time);
        Assert.True(limiter.TryTake("k", 10, 2, out _));

        time.Advance(TimeSpan.FromHours(1));

        Assert.True(limiter.TryTake("k", 10, 2, out _));
        Assert.True(limiter.TryTake("k", 10, 2, out _));
        Assert.False(limiter.TryTake("k", 10, 2, out var retryAfter));
        Assert.Equal(1, retryAfter);
    }
}
