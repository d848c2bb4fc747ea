using System.Text;
using System.Text.Json;

namespace ServerlessInference.Testing.Gateway;

/// <summary>Sends one request to a host's gateway the way that host receives it (over HTTP for the DevHost, through
/// the function classes for the Functions app) and returns the whole response.</summary>
public interface IGatewayDriver
{
    Task<GatewayResponse> SendAsync(GatewayRequest request);
}

/// <summary>A request body with its content type and the content headers that travel with it.</summary>
public sealed record GatewayContent(byte[] Body, string? ContentType, IReadOnlyDictionary<string, string>? Headers = null);

/// <summary>A request: method, path (with an optional query), request headers and an optional body.</summary>
public sealed record GatewayRequest(string Method, string Path, GatewayContent? Content = null)
{
    public IReadOnlyDictionary<string, string> Headers { get; init; } = new Dictionary<string, string>();

    public static GatewayRequest Get(string path) => new("GET", path);

    public static GatewayRequest Delete(string path) => new("DELETE", path);

    public static GatewayRequest Post(string path, GatewayContent content, params (string Name, string Value)[] headers) =>
        new("POST", path, content) { Headers = headers.ToDictionary(h => h.Name, h => h.Value, StringComparer.OrdinalIgnoreCase) };
}

/// <summary>A response: status, every header (content headers included, names case-insensitive) and the body.</summary>
public sealed class GatewayResponse(int status, IReadOnlyDictionary<string, string> headers, byte[] body)
{
    public int Status { get; } = status;

    public IReadOnlyDictionary<string, string> Headers { get; } = new Dictionary<string, string>(headers, StringComparer.OrdinalIgnoreCase);

    public byte[] Body { get; } = body;

    public bool IsSuccess => Status is >= 200 and < 300;

    /// <summary>The media type of <c>Content-Type</c>, without parameters.</summary>
    public string? MediaType => Header("Content-Type")?.Split(';')[0].Trim();

    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;

    public string Text => Encoding.UTF8.GetString(Body);

    public JsonElement Json() => JsonDocument.Parse(Body).RootElement.Clone();

    /// <summary>The message of an OIP error body <c>{"error": "..."}</c>.</summary>
    public string Error() => Json().GetProperty("error").GetString()!;

    public override string ToString() => $"{Status}: {Text}";
}
