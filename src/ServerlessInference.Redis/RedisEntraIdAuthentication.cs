using Azure;
using Azure.Core;
using Azure.Identity;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;
using StackExchange.Redis.Configuration;

namespace ServerlessInference.Redis;

/// <summary>Authenticates the Redis connection with Microsoft Entra ID (Azure Managed Redis, Azure Cache for Redis):
/// user = the identity's object id, password = an access token for <see cref="Scope"/>, renewed before it expires.</summary>
/// <remarks>
/// <para>StackExchange.Redis has no hook for rotating credentials; it sends the configured user and password whenever it
/// makes a connection. So, as Microsoft.Azure.StackExchangeRedis does, the password comes from an options provider that
/// answers the current token (every new or restored connection uses it), and each renewal sends <c>AUTH</c> with the new
/// token on every connected server before the old one expires, because Azure closes a connection whose token expired.</para>
/// <para>A RESP2 subscription connection cannot take <c>AUTH</c>: Azure closes it when its token expires and
/// StackExchange.Redis restores it with the current token. Notifications lost meanwhile are covered by the job queue's
/// periodic re-read.</para>
/// <para>Thread-safe. The token is never logged. Dispose stops the renewals.</para>
/// </remarks>
public sealed partial class RedisEntraIdAuthentication : IDisposable
{
    /// <summary>The scope of Redis access tokens.</summary>
    public const string Scope = "https://redis.azure.com/.default";

    /// <summary>How long before expiry a token is renewed (halfway through its life when it lives shorter).</summary>
    internal static readonly TimeSpan RenewalMargin = TimeSpan.FromMinutes(5);

    /// <summary>How soon a failed renewal is tried again (the old token is used until it expires).</summary>
    internal static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan s_minimumDelay = TimeSpan.FromSeconds(1);
    private static readonly TokenRequestContext s_request = new([Scope]);

    private readonly TokenCredential _credential;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _lock = new();
    private volatile string? _token;
    private DateTimeOffset _expiresOn;
    private IConnectionMultiplexer? _multiplexer;
    private ITimer? _timer;
    private Task _renewal = Task.CompletedTask;
    private bool _disposed;

    /// <param name="credential">Where tokens come from (a <c>DefaultAzureCredential</c> in the hosts).</param>
    /// <param name="principalId">The object id of the identity: its Redis user name.</param>
    /// <param name="timeProvider">The clock renewals are scheduled on.</param>
    /// <param name="logger">Renewals and failures (never the token).</param>
    public RedisEntraIdAuthentication(TokenCredential credential, string principalId, TimeProvider timeProvider, ILogger<RedisEntraIdAuthentication>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(credential);
        ArgumentException.ThrowIfNullOrWhiteSpace(principalId);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _credential = credential;
        User = principalId.Trim();
        _time = timeProvider;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>The Redis user name: the identity's object id.</summary>
    public string User { get; }

    /// <summary>When the current token expires (<see cref="DateTimeOffset.MinValue"/> before the first one).</summary>
    public DateTimeOffset ExpiresOn
    {
        get
        {
            lock (_lock)
            {
                return _expiresOn;
            }
        }
    }

    /// <summary>The current token (tests only; never log it).</summary>
    internal string? Token => _token;

    /// <summary>The renewal in progress, or the last one (tests await it after advancing the clock).</summary>
    internal Task Renewal => Volatile.Read(ref _renewal);

    /// <summary>Authentication from <c>Inference:Redis</c>: <c>DefaultAzureCredential</c> with
    /// <see cref="RedisOptions.ManagedIdentityClientId"/> when set, user <see cref="RedisOptions.EntraPrincipalId"/>.</summary>
    public static RedisEntraIdAuthentication Create(RedisOptions options, TimeProvider timeProvider, ILogger<RedisEntraIdAuthentication>? logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        var clientId = string.IsNullOrWhiteSpace(options.ManagedIdentityClientId) ? null : options.ManagedIdentityClientId.Trim();
        var credential = new DefaultAzureCredential(new DefaultAzureCredentialOptions { ManagedIdentityClientId = clientId });
        return new RedisEntraIdAuthentication(
            credential,
            options.EntraPrincipalId ?? throw new InvalidOperationException($"{RedisOptions.Section}:EntraPrincipalId is required when {RedisOptions.Section}:Authentication is EntraId"),
            timeProvider,
            logger);
    }

    /// <summary>Gets the first token (blocking) and makes <paramref name="configuration"/> authenticate with the user and
    /// the current token, keeping StackExchange.Redis's defaults for its endpoints (Azure's included).</summary>
    /// <exception cref="InvalidOperationException">No token could be got; the message names the settings.</exception>
    internal void Configure(ConfigurationOptions configuration)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        try
        {
            Accept(_credential.GetToken(s_request, CancellationToken.None));
        }
        catch (Exception ex) when (ex is AuthenticationFailedException or CredentialUnavailableException or RequestFailedException)
        {
            throw new InvalidOperationException(
                $"{RedisOptions.Section}:Authentication is EntraId, but no Microsoft Entra ID token for {Scope} could be got " +
                $"(identity: {RedisOptions.Section}:ManagedIdentityClientId or AZURE_CLIENT_ID, else the system-assigned or signed-in identity): {ex.Message}",
                ex);
        }

        configuration.Defaults = new TokenOptionsProvider(configuration.Defaults, this);
    }

    /// <summary>Renews the token on schedule and re-authenticates <paramref name="multiplexer"/>'s connections with each new one.</summary>
    internal void Start(IConnectionMultiplexer multiplexer)
    {
        ArgumentNullException.ThrowIfNull(multiplexer);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_multiplexer is not null)
            {
                throw new InvalidOperationException("this authentication already serves a connection");
            }

            _multiplexer = multiplexer;
            _timer = _time.CreateTimer(static state => ((RedisEntraIdAuthentication)state!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            ScheduleLocked(NextRenewal(_expiresOn, refreshOn: null, _time.GetUtcNow()));
        }
    }

    /// <summary>When to renew a token that expires at <paramref name="expiresOn"/>: <see cref="RenewalMargin"/> before,
    /// or halfway for a short-lived one, or at <paramref name="refreshOn"/> when the credential says so earlier.</summary>
    internal static TimeSpan NextRenewal(DateTimeOffset expiresOn, DateTimeOffset? refreshOn, DateTimeOffset now)
    {
        var remaining = expiresOn - now;
        var at = remaining > 2 * RenewalMargin ? expiresOn - RenewalMargin : now + (remaining / 2);
        if (refreshOn is { } refresh && refresh > now && refresh < at)
        {
            at = refresh;
        }

        var delay = at - now;
        return delay < s_minimumDelay ? s_minimumDelay : delay;
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _timer?.Dispose();
        }

        _stopping.Cancel();
        _stopping.Dispose();
    }

    private void OnTimer()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            Volatile.Write(ref _renewal, RenewAsync(_stopping.Token));
        }
    }

    private async Task RenewAsync(CancellationToken cancellationToken)
    {
        // Off the timer's thread: a credential may block.
        await Task.Yield();
        AccessToken token;
        try
        {
            token = await _credential.GetTokenAsync(s_request, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex)
        {
            // Keep the old token (valid until it expires) and try again soon.
            Log.RenewalFailed(_logger, ex, ExpiresOn, RetryInterval.TotalSeconds);
            Schedule(RetryInterval);
            return;
        }

        var previous = _token;
        Accept(token);
        var reauthenticated = 0;
        if (!string.Equals(previous, token.Token, StringComparison.Ordinal))
        {
            reauthenticated = await ReauthenticateAsync(token.Token).ConfigureAwait(false);
        }

        Log.Renewed(_logger, token.ExpiresOn, reauthenticated);
        Schedule(NextRenewal(token.ExpiresOn, token.RefreshOn, _time.GetUtcNow()));
    }

    /// <summary>Sends <c>AUTH</c> with <paramref name="token"/> on every connected server; a server that is not connected
    /// now gets the new token when it reconnects.</summary>
    private async Task<int> ReauthenticateAsync(string token)
    {
        var multiplexer = _multiplexer;
        if (multiplexer is null)
        {
            return 0;
        }

        var done = 0;
        foreach (var server in multiplexer.GetServers())
        {
            if (!server.IsConnected)
            {
                continue;
            }

            try
            {
                await server.ExecuteAsync("AUTH", User, token).ConfigureAwait(false);
                done++;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                // The server closes the connection when the old token expires; it comes back with the new one.
                Log.ReauthenticationFailed(_logger, ex, server.EndPoint.ToString() ?? "?");
            }
        }

        return done;
    }

    private void Accept(AccessToken token)
    {
        if (string.IsNullOrEmpty(token.Token))
        {
            throw new AuthenticationFailedException($"the credential returned an empty token for {Scope}");
        }

        lock (_lock)
        {
            _token = token.Token;
            _expiresOn = token.ExpiresOn;
        }
    }

    private void Schedule(TimeSpan delay)
    {
        lock (_lock)
        {
            ScheduleLocked(delay);
        }
    }

    private void ScheduleLocked(TimeSpan delay)
    {
        if (!_disposed)
        {
            _timer?.Change(delay, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>StackExchange.Redis's defaults for the endpoints (Azure's among them), with the Entra ID user and the
    /// current token as credentials. Read at every connect, so a restored connection uses the newest token.</summary>
    private sealed class TokenOptionsProvider(DefaultOptionsProvider inner, RedisEntraIdAuthentication owner) : DefaultOptionsProvider
    {
        public override string? User => owner.User;

        public override string? Password => owner._token;

        public override bool AbortOnConnectFail => inner.AbortOnConnectFail;

        public override Version DefaultVersion => inner.DefaultVersion;

        public override bool GetDefaultSsl(EndPointCollection endPoints) => inner.GetDefaultSsl(endPoints);

        public override Task AfterConnectAsync(ConnectionMultiplexer multiplexer, Action<string> log) => inner.AfterConnectAsync(multiplexer, log);

        public override RedisProtocol? Protocol => inner.Protocol;

        public override string ConfigurationChannel => inner.ConfigurationChannel;

        public override MaintenanceNotificationMode MaintenanceNotifications => inner.MaintenanceNotifications;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Renewed the Microsoft Entra ID token for Redis (expires {ExpiresOn:O}); re-authenticated {Servers} connected server(s)")]
        public static partial void Renewed(ILogger logger, DateTimeOffset expiresOn, int servers);

        [LoggerMessage(2, LogLevel.Warning, "Could not renew the Microsoft Entra ID token for Redis (the current one expires {ExpiresOn:O}); trying again in {RetrySeconds} s")]
        public static partial void RenewalFailed(ILogger logger, Exception exception, DateTimeOffset expiresOn, double retrySeconds);

        [LoggerMessage(3, LogLevel.Warning, "Could not re-authenticate the Redis connection to {EndPoint} with the new token; it reconnects with it when the old one expires")]
        public static partial void ReauthenticationFailed(ILogger logger, Exception exception, string endPoint);
    }
}
