using System.Diagnostics;
using System.Globalization;
using Azure.Core;
using Azure.Identity;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Testing.Services;
using StackExchange.Redis;

namespace ServerlessInference.Redis.Tests;

/// <summary>Entra ID authentication against a real Redis: an ACL user stands for the identity (user = principal id,
/// password = the current fake token), as Azure Managed Redis does.</summary>
public sealed class RedisEntraIdAuthenticationTests(RedisServer server) : IClassFixture<RedisServer>, IAsyncLifetime
{
    private static readonly TimeSpan TokenLifetime = TimeSpan.FromHours(1);
    private readonly string _user = $"principal-{Guid.NewGuid():N}";
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 8, 0, 0, TimeSpan.Zero));
    private IConnectionMultiplexer _admin = null!;

    public async Task InitializeAsync()
    {
        _admin = await ConnectionMultiplexer.ConnectAsync(server.ConnectionString + ",allowAdmin=true");
        await SetPasswordsAsync("token-1");
    }

    public async Task DisposeAsync()
    {
        await _admin.GetDatabase().ExecuteAsync("ACL", "DELUSER", _user);
        await _admin.DisposeAsync();
    }

    [Fact]
    public async Task Connect_EntraId_AuthenticatesAsThePrincipalWithTheToken()
    {
        var credential = new FakeTokenCredential(_time, "token-1", TokenLifetime);
        using var authentication = new RedisEntraIdAuthentication(credential, _user, _time);
        await using var redis = Connect(authentication);

        Assert.Equal(_user, (string?)await redis.GetDatabase().ExecuteAsync("ACL", "WHOAMI"));
        await redis.GetDatabase().StringSetAsync($"{_user}:k", "v");
        Assert.Equal("v", (string?)await redis.GetDatabase().StringGetAsync($"{_user}:k"));
        Assert.Equal([RedisEntraIdAuthentication.Scope], Assert.Single(credential.Requests));
        Assert.Equal(_time.GetUtcNow() + TokenLifetime, authentication.ExpiresOn);
    }

    [Fact]
    public async Task Renewal_TokenRotates_ReauthenticatesTheOpenConnectionAndReconnectsWithTheNewToken()
    {
        var credential = new FakeTokenCredential(_time, "token-1", TokenLifetime);
        using var authentication = new RedisEntraIdAuthentication(credential, _user, _time);
        await using var redis = Connect(authentication);
        Assert.Equal(_user, (string?)await redis.GetDatabase().ExecuteAsync("ACL", "WHOAMI"));

        // The identity's token rotates: the old one stops working for new connections.
        await SetPasswordsAsync("token-2");
        credential.Token = "token-2";
        await _admin.GetDatabase().ExecuteAsync("CONFIG", "RESETSTAT");
        await _admin.GetDatabase().ExecuteAsync("ACL", "LOG", "RESET");

        _time.Advance(TokenLifetime - RedisEntraIdAuthentication.RenewalMargin - TimeSpan.FromSeconds(1));
        await authentication.Renewal;
        Assert.Single(credential.Requests);

        _time.Advance(TimeSpan.FromSeconds(1));
        await authentication.Renewal;
        Assert.Equal(2, credential.Requests.Count);
        Assert.Equal("token-2", authentication.Token);

        // The open connection sent AUTH with the new token, and the server took it.
        var auth = await CommandStatsAsync("auth");
        Assert.True(auth.Calls >= 1, "no AUTH reached the server after the renewal");
        Assert.Equal(0, auth.Failed);
        Assert.Empty((RedisResult[])(await _admin.GetDatabase().ExecuteAsync("ACL", "LOG"))!);
        Assert.Equal(_user, (string?)await redis.GetDatabase().ExecuteAsync("ACL", "WHOAMI"));

        // A connection made from now on (here: after the server dropped them all) authenticates with the new token.
        await _admin.GetDatabase().ExecuteAsync("CLIENT", "KILL", "USER", _user);
        Assert.Equal(_user, await WhoAmIOnceReconnectedAsync(redis));
        Assert.Empty((RedisResult[])(await _admin.GetDatabase().ExecuteAsync("ACL", "LOG"))!);
    }

    [Fact]
    public async Task Renewal_CredentialFails_KeepsTheTokenAndRetries()
    {
        var credential = new FakeTokenCredential(_time, "token-1", TokenLifetime);
        using var authentication = new RedisEntraIdAuthentication(credential, _user, _time);
        await using var redis = Connect(authentication);
        var firstExpiry = authentication.ExpiresOn;

        credential.Failure = new AuthenticationFailedException("the identity endpoint is down");
        _time.Advance(TokenLifetime - RedisEntraIdAuthentication.RenewalMargin);
        await authentication.Renewal;
        Assert.Equal(2, credential.Requests.Count);
        Assert.Equal("token-1", authentication.Token);
        Assert.Equal(firstExpiry, authentication.ExpiresOn);
        Assert.Equal(_user, (string?)await redis.GetDatabase().ExecuteAsync("ACL", "WHOAMI"));

        await SetPasswordsAsync("token-1", "token-2");
        credential.Failure = null;
        credential.Token = "token-2";
        _time.Advance(RedisEntraIdAuthentication.RetryInterval);
        await authentication.Renewal;
        Assert.Equal(3, credential.Requests.Count);
        Assert.Equal("token-2", authentication.Token);
    }

    [Fact]
    public void Connect_NoTokenAtStart_ThrowsNamingTheSettings()
    {
        var credential = new FakeTokenCredential(_time, "token-1", TokenLifetime)
        {
            Failure = new CredentialUnavailableException("no managed identity endpoint"),
        };
        using var authentication = new RedisEntraIdAuthentication(credential, _user, _time);

        var ex = Assert.Throws<InvalidOperationException>(() => Connect(authentication));

        Assert.Contains("Inference:Redis:Authentication is EntraId", ex.Message);
        Assert.Contains("Inference:Redis:ManagedIdentityClientId", ex.Message);
        Assert.Contains("no managed identity endpoint", ex.Message);
    }

    [Theory]
    [InlineData(60, null, 55)] // renewed 5 minutes before expiry
    [InlineData(6, null, 3)] // a short-lived token: halfway
    [InlineData(60, 30, 30)] // the credential asks for an earlier refresh
    [InlineData(60, -1, 55)] // a refresh time already past is ignored
    public void NextRenewal_Token_RenewsBeforeExpiry(int expiresInMinutes, int? refreshInMinutes, int expectedMinutes)
    {
        var now = _time.GetUtcNow();
        var refreshOn = refreshInMinutes is { } r ? now.AddMinutes(r) : (DateTimeOffset?)null;

        var delay = RedisEntraIdAuthentication.NextRenewal(now.AddMinutes(expiresInMinutes), refreshOn, now);

        Assert.Equal(TimeSpan.FromMinutes(expectedMinutes), delay);
    }

    [Fact]
    public void NextRenewal_TokenExpired_WaitsASecondRatherThanSpinning()
    {
        var now = _time.GetUtcNow();

        Assert.Equal(TimeSpan.FromSeconds(1), RedisEntraIdAuthentication.NextRenewal(now.AddMinutes(-1), null, now));
    }

    private IConnectionMultiplexer Connect(RedisEntraIdAuthentication authentication) =>
        RedisServiceCollectionExtensions.Connect(
            new RedisOptions { ConnectionString = server.ConnectionString, Authentication = RedisAuthentication.EntraId, EntraPrincipalId = _user },
            authentication);

    /// <summary>The user's passwords become exactly <paramref name="tokens"/> (existing connections stay authenticated,
    /// as on Redis; Azure additionally closes them when their token expires).</summary>
    private async Task SetPasswordsAsync(params string[] tokens)
    {
        object[] arguments = ["SETUSER", _user, "reset", "on", "~*", "&*", "+@all", .. tokens.Select(t => (object)(">" + t))];
        await _admin.GetDatabase().ExecuteAsync("ACL", arguments);
    }

    private async Task<(long Calls, long Failed)> CommandStatsAsync(string command)
    {
        var info = (string?)await _admin.GetDatabase().ExecuteAsync("INFO", "commandstats") ?? "";
        var line = info.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith($"cmdstat_{command}:", StringComparison.Ordinal));
        if (line is null)
        {
            return (0, 0);
        }

        var fields = line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Split(',')
            .Select(f => f.Split('='))
            .ToDictionary(f => f[0], f => f[1], StringComparer.Ordinal);
        long Field(string name) => fields.TryGetValue(name, out var value) ? long.Parse(value, CultureInfo.InvariantCulture) : 0;
        return (Field("calls"), Field("failed_calls") + Field("rejected_calls"));
    }

    /// <summary>Waits (bounded) for the multiplexer to restore its connection, then asks who it is.</summary>
    private static async Task<string?> WhoAmIOnceReconnectedAsync(IConnectionMultiplexer redis)
    {
        var deadline = Stopwatch.GetTimestamp() + (20 * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                return (string?)await redis.GetDatabase().ExecuteAsync("ACL", "WHOAMI");
            }
            catch (RedisConnectionException) when (Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    private sealed class FakeTokenCredential(TimeProvider time, string token, TimeSpan lifetime) : TokenCredential
    {
        private readonly Lock _lock = new();
        private readonly List<string[]> _requests = [];

        public string Token { get; set; } = token;

        public Exception? Failure { get; set; }

        public IReadOnlyList<string[]> Requests
        {
            get
            {
                lock (_lock)
                {
                    return [.. _requests];
                }
            }
        }

        public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken)
        {
            lock (_lock)
            {
                _requests.Add(requestContext.Scopes);
            }

            return Failure is { } failure ? throw failure : new AccessToken(Token, time.GetUtcNow() + lifetime);
        }

        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            ValueTask.FromResult(GetToken(requestContext, cancellationToken));
    }
}
