using System.Net.Http.Headers;

namespace ServerlessInference.Testing.Gateway;

/// <summary>Drives a gateway over HTTP (a <c>WebApplicationFactory</c>'s client, or a real address).</summary>
public sealed class HttpClientGatewayDriver(HttpClient client) : IGatewayDriver
{
    public async Task<GatewayResponse> SendAsync(GatewayRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var message = new HttpRequestMessage(new HttpMethod(request.Method), request.Path);
        foreach (var (name, value) in request.Headers)
        {
            message.Headers.TryAddWithoutValidation(name, value);
        }

        if (request.Content is { } content)
        {
            var body = new ByteArrayContent(content.Body);
            if (content.ContentType is not null)
            {
                body.Headers.ContentType = MediaTypeHeaderValue.Parse(content.ContentType);
            }

            foreach (var (name, value) in content.Headers ?? new Dictionary<string, string>())
            {
                body.Headers.TryAddWithoutValidation(name, value);
            }

            message.Content = body;
        }

        using var response = await client.SendAsync(message).ConfigureAwait(false);
        var bytes = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
        var headers = response.Headers.Concat(response.Content.Headers)
            .ToDictionary(h => h.Key, h => string.Join(", ", h.Value), StringComparer.OrdinalIgnoreCase);
        return new GatewayResponse((int)response.StatusCode, headers, bytes);
    }
}
