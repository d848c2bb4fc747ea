using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace ServerlessInference.Cli;

/// <summary>The platform's HTTP surface as <c>si</c> uses it: one client, the API key on every request, and every
/// refusal turned into a <see cref="CliException"/> that carries the server's own error text.</summary>
public sealed class GatewayClient : IDisposable
{
    private readonly HttpClient _http;

    public GatewayClient(Uri baseUrl, string? apiKey, HttpMessageHandler? handler = null)
    {
        BaseUrl = baseUrl;
        _http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        _http.BaseAddress = baseUrl;
        // Synchronous infers may wait up to the gateway's MaxWait; generations stream for as long as they run.
        _http.Timeout = Timeout.InfiniteTimeSpan;
        if (!string.IsNullOrEmpty(apiKey))
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }
    }

    public Uri BaseUrl { get; }

    public HttpClient Http => _http;

    /// <summary>GETs <paramref name="path"/> and parses the JSON body; a non-2xx answer throws.</summary>
    public async Task<JsonDocument> GetJsonAsync(string path, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(new HttpRequestMessage(HttpMethod.Get, path), HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
        return await ReadJsonAsync(response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends <paramref name="request"/>; a non-2xx answer throws with the server's error text. The caller
    /// disposes the response.</summary>
    public async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, HttpCompletionOption completion, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, completion, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new CliException(ExitCodes.ServerError, $"cannot reach {BaseUrl.GetLeftPart(UriPartial.Authority)}: {ex.Message}", ex);
        }
        finally
        {
            request.Dispose();
        }

        if (!response.IsSuccessStatusCode)
        {
            using (response)
            {
                throw await ErrorAsync(response, cancellationToken).ConfigureAwait(false);
            }
        }

        return response;
    }

    public static async Task<JsonDocument> ReadJsonAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return JsonDocument.Parse(body);
        }
        catch (JsonException ex)
        {
            throw new CliException(ExitCodes.ServerError, $"{(int)response.StatusCode} from {response.RequestMessage?.RequestUri?.AbsolutePath}: the body is not JSON ({ex.Message})", ex);
        }
    }

    /// <summary>The exception for a non-2xx answer: 4xx is <see cref="ExitCodes.Refused"/>, 5xx
    /// <see cref="ExitCodes.ServerError"/>; the message is the status and the server's error text (OIP's
    /// <c>{"error": "..."}</c> or OpenAI's <c>{"error": {"message": ...}}</c>).</summary>
    public static async Task<CliException> ErrorAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        var status = (int)response.StatusCode;
        var code = status >= 500 ? ExitCodes.ServerError : ExitCodes.Refused;
        return new CliException(code, $"{status} {Reason(response.StatusCode)}: {ErrorText(body)}");
    }

    /// <summary>The error text of an OIP or OpenAI error body, or the body itself (on one line) when it is neither.</summary>
    public static string ErrorText(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var error))
            {
                if (error.ValueKind == JsonValueKind.String)
                {
                    return error.GetString()!;
                }

                if (error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.String)
                {
                    return message.GetString()!;
                }
            }
        }
        catch (JsonException)
        {
        }

        var flat = body.ReplaceLineEndings(" ").Trim();
        return flat.Length == 0 ? "(no body)" : flat.Length > 300 ? flat[..300] + "..." : flat;
    }

    private static string Reason(HttpStatusCode status) => status switch
    {
        HttpStatusCode.BadRequest => "Bad Request",
        HttpStatusCode.Unauthorized => "Unauthorized",
        HttpStatusCode.Forbidden => "Forbidden",
        HttpStatusCode.NotFound => "Not Found",
        HttpStatusCode.Conflict => "Conflict",
        HttpStatusCode.RequestEntityTooLarge => "Payload Too Large",
        HttpStatusCode.TooManyRequests => "Too Many Requests",
        HttpStatusCode.InternalServerError => "Internal Server Error",
        HttpStatusCode.ServiceUnavailable => "Service Unavailable",
        _ => status.ToString(),
    };

    public void Dispose() => _http.Dispose();
}
