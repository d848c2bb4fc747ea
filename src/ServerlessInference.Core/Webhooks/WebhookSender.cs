using System.Net;
using System.Net.Sockets;
using System.Text;
using StandardWebhooks;

namespace ServerlessInference.Webhooks;

/// <summary>How one attempt went.</summary>
public enum WebhookAttemptOutcome
{
    Delivered,

    /// <summary>The receiver failed or could not be reached: worth another attempt.</summary>
    Failed,

    /// <summary>Not sent, and retrying would not change that: the target is in a refused range, or it redirected.</summary>
    Refused,
}

/// <summary>POSTs signed webhook bodies (Standard Webhooks: <c>webhook-id</c>, <c>webhook-timestamp</c>,
/// <c>webhook-signature</c> = <c>v1,</c> base64 HMAC-SHA256 of <c>id.timestamp.body</c>) through a connection that only
/// reaches what <see cref="WebhookTargetPolicy"/> allows.</summary>
/// <remarks>
/// <para>SSRF: the host name is resolved here and the policy is checked on every address before one is connected to
/// (<see cref="SocketsHttpHandler.ConnectCallback"/>), so a name that resolves to loopback, or changes what it resolves
/// to between a check and the connect (DNS rebinding), reaches nothing refused. Redirects are never followed: a 3xx is
/// a refusal naming its <c>Location</c>, so no hop can lead anywhere unchecked.</para>
/// <para>Thread-safe; one instance per process (it owns its connection pool). Dispose it to close the connections.</para>
/// </remarks>
public sealed class WebhookSender : IDisposable
{
    private readonly HttpClient _client;
    private readonly StandardWebhook _signer;
    private readonly WebhookTargetPolicy _policy;

    public WebhookSender(WebhookOptions options, WebhookTargetPolicy policy)
    {
        _policy = policy;
        _signer = new StandardWebhook(WebhookOptions.KeyOf(options.Secret ?? "") ?? new byte[32]);
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseProxy = false,
            UseCookies = false,
            ConnectTimeout = options.Timeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            ConnectCallback = ConnectAsync,
        };
        _client = new HttpClient(handler) { Timeout = options.Timeout };
    }

    /// <summary>The <c>webhook-signature</c> value for a message.</summary>
    public string Sign(string messageId, DateTimeOffset timestamp, string body) => _signer.Sign(messageId, timestamp, body);

    /// <summary>POSTs <paramref name="body"/> (JSON) to <paramref name="url"/>, signed; returns the outcome and, unless
    /// delivered, why.</summary>
    public async Task<(WebhookAttemptOutcome Outcome, string? Reason)> SendAsync(
        string url, string messageId, DateTimeOffset timestamp, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        var text = Encoding.UTF8.GetString(body.Span);
        using var request = new HttpRequestMessage(HttpMethod.Post, url)
        {
            Content = new ReadOnlyMemoryContent(body),
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        request.Headers.TryAddWithoutValidation("webhook-id", messageId);
        request.Headers.TryAddWithoutValidation("webhook-timestamp", timestamp.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation("webhook-signature", Sign(messageId, timestamp, text));
        try
        {
            using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (status is >= 200 and < 300)
            {
                return (WebhookAttemptOutcome.Delivered, null);
            }

            if (status is >= 300 and < 400)
            {
                return (WebhookAttemptOutcome.Refused, $"the receiver answered {status} to {response.Headers.Location?.ToString() ?? "nowhere"}; redirects are not followed");
            }

            return (WebhookAttemptOutcome.Failed, $"the receiver answered {status}");
        }
        catch (HttpRequestException ex) when (Refusal(ex) is { } refused)
        {
            return (WebhookAttemptOutcome.Refused, refused.Message);
        }
        catch (HttpRequestException ex)
        {
            return (WebhookAttemptOutcome.Failed, $"the receiver could not be reached: {ex.Message}");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (WebhookAttemptOutcome.Failed, $"the receiver did not answer within {_client.Timeout.TotalSeconds:0.###} s");
        }
    }

    public void Dispose() => _client.Dispose();

    private static WebhookRefusedException? Refusal(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is WebhookRefusedException refused)
            {
                return refused;
            }
        }

        return null;
    }

    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var host = context.DnsEndPoint.Host;
        IPAddress[] addresses = IPAddress.TryParse(host.Trim('[', ']'), out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        var byName = _policy.IsAllowedHost(host);
        string? refusal = null;
        foreach (var address in addresses)
        {
            if (!byName && _policy.RefusalOf(address) is { } range)
            {
                refusal ??= $"the webhook target {host} resolves to {address}, a {range} address; refused (allow it with {WebhookOptions.Section}:AllowedNetworks or :AllowedHosts)";
                continue;
            }

            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, context.DnsEndPoint.Port), cancellationToken).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException) when (address != addresses[^1])
            {
                socket.Dispose();
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        throw new WebhookRefusedException(refusal ?? $"the webhook target {host} resolves to no address");
    }
}
