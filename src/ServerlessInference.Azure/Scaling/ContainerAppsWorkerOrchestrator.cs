using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Azure.Core;
using Microsoft.Extensions.Logging;
using ServerlessInference.Scaling;

namespace ServerlessInference.Azure.Scaling;

/// <summary>An <see cref="IWorkerOrchestrator"/> whose workers are the replicas of an Azure Container App, scaled
/// through Azure Resource Manager's REST API (there is no ARM SDK for Container Apps on our feed).</summary>
/// <remarks>
/// <para><b>The replica count is the app's scale block.</b> The worker app has no ingress and no scale rules, so
/// Container Apps runs exactly <c>minReplicas</c> replicas: <c>N</c> workers are <c>minReplicas = maxReplicas = N</c>.
/// Container Apps rejects <c>maxReplicas = 0</c>, so zero is <c>minReplicas = 0, maxReplicas = 1</c>: with no rule
/// and no ingress nothing ever starts a replica. Every PATCH also sets <c>rules: []</c>, since a rule (or the default
/// HTTP rule of an app with ingress) would add replicas the scaler did not ask for.</para>
/// <para><b>Current replicas</b> (<see cref="GetReplicasAsync"/>) is the <c>minReplicas</c> the app is told to keep,
/// not the replicas running: a PATCH makes a new revision whose replicas take a while to pull and start, and
/// counting only those would make the scaler ask again on every tick.</para>
/// <para><b>Cost of a change.</b> The scale block lives in <c>properties.template</c>, so each change makes a new
/// revision; in single-revision mode its replicas start fresh (cold warm pools) and the old revision's replicas get
/// SIGTERM and drain. <see cref="SetReplicasAsync"/> therefore reads the app first and sends nothing when the scale
/// block already says what is asked.</para>
/// <para><b>Failures.</b> 429 and 5xx answers and network failures are retried with backoff, honouring
/// <c>Retry-After</c>, on the injected <see cref="TimeProvider"/>; a 401 drops the cached token and tries once more. A call
/// that still fails throws <see cref="HttpRequestException"/> naming the status and ARM's error code; the scaler
/// logs it and tries again on its next tick.</para>
/// <para>Thread-safe. Tokens come from the injected <see cref="TokenCredential"/> for <c>{ManagementEndpoint}/.default</c>
/// and are cached until their refresh time (at the latest five minutes before they expire). Disposing releases the
/// HTTP handler; it does not touch the app (a restarting gateway must not stop the workers).</para>
/// </remarks>
public sealed partial class ContainerAppsWorkerOrchestrator : IWorkerOrchestrator, IDisposable
{
    /// <summary>How long before expiry a cached token is replaced when the credential gives no refresh time.</summary>
    public static readonly TimeSpan TokenRefreshMargin = TimeSpan.FromMinutes(5);

    private readonly ContainerAppsOrchestratorOptions _options;
    private readonly TokenCredential _credential;
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TokenRequestContext _tokenRequest;
    private readonly SemaphoreSlim _tokenGate = new(1, 1);
    private readonly Lock _lock = new();
    private AccessToken? _token;
    private DateTimeOffset _notBefore = DateTimeOffset.MinValue;

    /// <param name="options">Validated settings (see <see cref="ContainerAppsOrchestratorOptionsValidator"/>).</param>
    /// <param name="credential">Signs the ARM calls (in Azure: <c>DefaultAzureCredential</c> on a managed identity).</param>
    /// <param name="handler">The HTTP handler, owned from here on.</param>
    /// <param name="timeProvider">Clock for token expiry and retry delays.</param>
    /// <param name="logger">Where retries and changes are logged.</param>
    public ContainerAppsWorkerOrchestrator(
        ContainerAppsOrchestratorOptions options,
        TokenCredential credential,
        HttpMessageHandler handler,
        TimeProvider timeProvider,
        ILogger<ContainerAppsWorkerOrchestrator> logger)
    {
        var failures = ContainerAppsOrchestratorOptionsValidator.Failures(options);
        if (failures.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", failures), nameof(options));
        }

        _options = options;
        _credential = credential;
        _http = new HttpClient(handler, disposeHandler: true) { Timeout = TimeSpan.FromSeconds(60) };
        _time = timeProvider;
        _logger = logger;
        _tokenRequest = new TokenRequestContext([options.Scope()]);
        AppUri = options.AppUri();
    }

    /// <summary>The container app's ARM URL (with the api-version).</summary>
    public Uri AppUri { get; }

    /// <summary>The app's <c>minReplicas</c>: the replicas it is told to keep (absent means 0).</summary>
    public async ValueTask<int> GetReplicasAsync(CancellationToken cancellationToken) =>
        (await ReadScaleAsync(cancellationToken).ConfigureAwait(false)).MinReplicas;

    /// <summary>Makes the app keep <paramref name="replicas"/> replicas; sends nothing when it already does.</summary>
    public async ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(replicas);
        var target = ContainerAppScale.For(replicas);
        var current = await ReadScaleAsync(cancellationToken).ConfigureAwait(false);
        if (current == target)
        {
            Log.AlreadySet(_logger, AppUri.AbsolutePath, replicas);
            return;
        }

        using var response = await SendAsync(HttpMethod.Patch, target.ToMergePatch, cancellationToken).ConfigureAwait(false);
        Log.Patched(_logger, AppUri.AbsolutePath, current.MinReplicas, replicas, (int)response.StatusCode);
    }

    /// <summary>The app's <c>properties.template.scale</c> as ARM reports it.</summary>
    internal async ValueTask<ContainerAppScale> ReadScaleAsync(CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Get, content: null, cancellationToken).ConfigureAwait(false);
        var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (body.ConfigureAwait(false))
        {
            using var json = await JsonDocument.ParseAsync(body, cancellationToken: cancellationToken).ConfigureAwait(false);
            return ContainerAppScale.Parse(json.RootElement);
        }
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, Func<HttpContent>? content, CancellationToken cancellationToken)
    {
        DateTimeOffset notBefore;
        lock (_lock)
        {
            notBefore = _notBefore;
        }

        if (_time.GetUtcNow() < notBefore)
        {
            throw new HttpRequestException(
                $"{method} {AppUri.AbsolutePath} not sent: Azure Resource Manager asked to wait until {notBefore:O} (429 Retry-After)",
                inner: null,
                HttpStatusCode.TooManyRequests);
        }

        var retriedUnauthorized = false;
        for (var attempt = 1; ; attempt++)
        {
            using var request = new HttpRequestMessage(method, AppUri) { Content = content?.Invoke() };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await TokenAsync(cancellationToken).ConfigureAwait(false));
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));

            HttpResponseMessage? response = null;
            Exception? failure = null;
            try
            {
                response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException ex)
            {
                failure = ex;
            }
            catch (TaskCanceledException ex) when (!cancellationToken.IsCancellationRequested)
            {
                failure = ex; // HttpClient's own timeout
            }

            if (response is { IsSuccessStatusCode: true })
            {
                return response;
            }

            try
            {
                TimeSpan? delay = null;
                if (response?.StatusCode == HttpStatusCode.Unauthorized && !retriedUnauthorized)
                {
                    // A revoked or rotated token: fetch a new one and try once more.
                    retriedUnauthorized = true;
                    ForgetToken();
                    delay = TimeSpan.Zero;
                }
                else if (attempt <= _options.MaxRetries && (failure is not null || IsTransient(response!.StatusCode)))
                {
                    delay = RetryDelay(attempt, response);
                }

                if (delay is not { } wait)
                {
                    throw await FailureAsync(method, response, failure, attempt, cancellationToken).ConfigureAwait(false);
                }

                Log.Retrying(_logger, method.Method, AppUri.AbsolutePath, response is null ? failure!.GetType().Name : ((int)response.StatusCode).ToString(), wait.TotalSeconds, attempt);
                response?.Dispose();
                response = null;
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, _time, cancellationToken).ConfigureAwait(false);
                }
            }
            finally
            {
                response?.Dispose();
            }
        }
    }

    private static bool IsTransient(HttpStatusCode status) =>
        status is HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout || (int)status >= 500;

    /// <summary>ARM's <c>Retry-After</c> when it sends one, else exponential backoff; null when the wait is longer than
    /// <see cref="ContainerAppsOrchestratorOptions.MaxRetryDelay"/> (then later calls wait it out without sending).</summary>
    private TimeSpan? RetryDelay(int attempt, HttpResponseMessage? response)
    {
        var now = _time.GetUtcNow();
        TimeSpan? retryAfter = response?.Headers.RetryAfter switch
        {
            { Delta: { } delta } => delta,
            { Date: { } date } => date - now,
            _ => null,
        };

        if (retryAfter is { } asked)
        {
            asked = asked < TimeSpan.Zero ? TimeSpan.Zero : asked;
            if (asked > _options.MaxRetryDelay)
            {
                lock (_lock)
                {
                    _notBefore = now + asked;
                }

                return null;
            }

            return asked;
        }

        var backoff = _options.RetryDelay * Math.Pow(2, attempt - 1);
        return backoff > _options.MaxRetryDelay ? _options.MaxRetryDelay : backoff;
    }

    private async Task<HttpRequestException> FailureAsync(HttpMethod method, HttpResponseMessage? response, Exception? failure, int attempts, CancellationToken cancellationToken)
    {
        var what = $"{method} {AppUri.AbsolutePath} (api-version {ContainerAppsOrchestratorOptions.ApiVersion})";
        if (response is null)
        {
            return new HttpRequestException($"{what} failed after {attempts} attempt(s): {failure!.Message}", failure);
        }

        var status = response.StatusCode;
        var error = await ArmErrorAsync(response, cancellationToken).ConfigureAwait(false);
        var hint = status switch
        {
            HttpStatusCode.NotFound => $"; check {ContainerAppsOrchestratorOptions.Section}:SubscriptionId, :ResourceGroup and :AppName",
            HttpStatusCode.Forbidden => "; the identity needs Microsoft.App/containerApps/read and /write on the app, plus managedEnvironments/join/action and userAssignedIdentities/assign/action (the custom role in bicep/modules/scaler-role.bicep)",
            HttpStatusCode.Unauthorized => $"; the credential's token was refused (is {ContainerAppsOrchestratorOptions.Section}:ManagedIdentityClientId or AZURE_CLIENT_ID right?)",
            _ => "",
        };
        return new HttpRequestException($"{what} failed with {(int)status} {status} after {attempts} attempt(s){error}{hint}", failure, status);
    }

    /// <summary>ARM's <c>{"error":{"code","message"}}</c>, as text to append; empty when the body has none.</summary>
    private static async Task<string> ArmErrorAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            using var json = JsonDocument.Parse(text);
            if (json.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
            {
                var code = error.TryGetProperty("code", out var c) ? c.GetString() : null;
                var message = error.TryGetProperty("message", out var m) ? m.GetString() : null;
                return $": {code}: {message}";
            }
        }
        catch (JsonException)
        {
        }

        return "";
    }

    private async ValueTask<string> TokenAsync(CancellationToken cancellationToken)
    {
        if (FreshToken() is { } cached)
        {
            return cached;
        }

        await _tokenGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (FreshToken() is { } fetched)
            {
                return fetched;
            }

            var token = await _credential.GetTokenAsync(_tokenRequest, cancellationToken).ConfigureAwait(false);
            lock (_lock)
            {
                _token = token;
            }

            return token.Token;
        }
        finally
        {
            _tokenGate.Release();
        }
    }

    private string? FreshToken()
    {
        lock (_lock)
        {
            if (_token is not { } token)
            {
                return null;
            }

            var refreshAt = token.ExpiresOn - TokenRefreshMargin;
            if (token.RefreshOn is { } refreshOn && refreshOn < refreshAt)
            {
                refreshAt = refreshOn;
            }

            return _time.GetUtcNow() < refreshAt ? token.Token : null;
        }
    }

    private void ForgetToken()
    {
        lock (_lock)
        {
            _token = null;
        }
    }

    public void Dispose()
    {
        _http.Dispose();
        _tokenGate.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Container app {App}: minReplicas {Current} -> {Desired} (ARM answered {Status})")]
        public static partial void Patched(ILogger logger, string app, int current, int desired, int status);

        [LoggerMessage(2, LogLevel.Debug, "Container app {App} already keeps {Replicas} replicas; nothing sent")]
        public static partial void AlreadySet(ILogger logger, string app, int replicas);

        [LoggerMessage(3, LogLevel.Warning, "{Method} {App} answered {Outcome}; retrying in {Seconds} s (attempt {Attempt})")]
        public static partial void Retrying(ILogger logger, string method, string app, string outcome, double seconds, int attempt);
    }
}

/// <summary>A container app's scale block: <c>minReplicas</c>, <c>maxReplicas</c> and how many rules it has.</summary>
internal readonly record struct ContainerAppScale(int MinReplicas, int MaxReplicas, int Rules)
{
    /// <summary>Container Apps' <c>maxReplicas</c> when the app does not set it.</summary>
    public const int DefaultMaxReplicas = 10;

    /// <summary>The scale block that keeps exactly <paramref name="replicas"/> replicas.</summary>
    public static ContainerAppScale For(int replicas) => new(replicas, Math.Max(replicas, 1), 0);

    /// <summary>Reads <c>properties.template.scale</c> of a container app (absent parts take Container Apps' defaults).</summary>
    public static ContainerAppScale Parse(JsonElement app)
    {
        if (!app.TryGetProperty("properties", out var properties) || properties.ValueKind != JsonValueKind.Object
            || !properties.TryGetProperty("template", out var template) || template.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException("the container app's body has no properties.template; is this a Microsoft.App/containerApps resource?");
        }

        if (!template.TryGetProperty("scale", out var scale) || scale.ValueKind != JsonValueKind.Object)
        {
            return new ContainerAppScale(0, DefaultMaxReplicas, 0);
        }

        return new ContainerAppScale(
            Int(scale, "minReplicas") ?? 0,
            Int(scale, "maxReplicas") ?? DefaultMaxReplicas,
            scale.TryGetProperty("rules", out var rules) && rules.ValueKind == JsonValueKind.Array ? rules.GetArrayLength() : 0);
    }

    /// <summary>The JSON merge patch (RFC 7396) that sets this scale block and nothing else.</summary>
    public HttpContent ToMergePatch()
    {
        var body = "{\"properties\":{\"template\":{\"scale\":{" +
            string.Create(CultureInfo.InvariantCulture, $"\"minReplicas\":{MinReplicas},\"maxReplicas\":{MaxReplicas},") +
            "\"rules\":[]}}}}";
        // ARM's PATCH takes merge-patch semantics under the media type application/json (the REST spec's only one).
        return new StringContent(body, Encoding.UTF8, "application/json");
    }

    private static int? Int(JsonElement scale, string name) =>
        scale.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetInt32() : null;
}
