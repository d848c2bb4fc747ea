using System.Globalization;
using System.Net;

namespace ServerlessInference.Security;

/// <summary>The loopback rule's reading of listen addresses as Kestrel takes them (<c>http://127.0.0.1:7071</c>,
/// <c>http://localhost:5000</c>, <c>http://[::1]:80</c>, <c>http://0.0.0.0:8080</c>, <c>http://+:80</c>,
/// <c>http://*:80</c>, <c>http://example.com:80</c>). Only loopback IPs and <c>localhost</c> are loopback: a wildcard or
/// a host name binds every interface.</summary>
public static class ListenAddresses
{
    /// <summary>Splits <paramref name="url"/> into host and port; false when it is not <c>http(s)://host:port[/...]</c>.</summary>
    public static bool TryParse(string url, out string host, out int port)
    {
        host = "";
        port = 0;
        var trimmed = url.Trim();
        var scheme = trimmed.IndexOf("://", StringComparison.Ordinal);
        if (scheme < 0 || !(trimmed[..scheme].Equals("http", StringComparison.OrdinalIgnoreCase) || trimmed[..scheme].Equals("https", StringComparison.OrdinalIgnoreCase)))
        {
            return false;
        }

        var rest = trimmed[(scheme + 3)..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var authority = slash < 0 ? rest : rest[..slash];
        var colon = authority.LastIndexOf(':');
        if (colon <= 0 || authority.EndsWith(']'))
        {
            return false;
        }

        host = authority[..colon];
        return int.TryParse(authority[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out port) && port <= 65535;
    }

    /// <summary>Whether <paramref name="url"/> listens on loopback only. Anything unparseable counts as not loopback.</summary>
    public static bool IsLoopback(string url)
    {
        if (!TryParse(url, out var host, out _))
        {
            return false;
        }

        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        var ip = host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;
        return IPAddress.TryParse(ip, out var address) && IPAddress.IsLoopback(address);
    }

    /// <summary>The addresses a host configured this way listens on: <c>urls</c> (and <c>ASPNETCORE_URLS</c>), else
    /// <c>http_ports</c>/<c>https_ports</c> (every interface), plus each <c>Kestrel:Endpoints:*:Url</c>.</summary>
    public static IReadOnlyList<string> Configured(Microsoft.Extensions.Configuration.IConfiguration configuration)
    {
        var addresses = new List<string>();
        var urls = configuration["urls"];
        if (string.IsNullOrWhiteSpace(urls))
        {
            urls = configuration["ASPNETCORE_URLS"];
        }

        if (!string.IsNullOrWhiteSpace(urls))
        {
            addresses.AddRange(urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        }
        else
        {
            foreach (var (setting, scheme) in new[] { ("http_ports", "http"), ("https_ports", "https"), ("ASPNETCORE_HTTP_PORTS", "http"), ("ASPNETCORE_HTTPS_PORTS", "https") })
            {
                foreach (var port in (configuration[setting] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    addresses.Add($"{scheme}://*:{port}");
                }
            }
        }

        foreach (var endpoint in configuration.GetSection("Kestrel:Endpoints").GetChildren())
        {
            if (endpoint["Url"] is { Length: > 0 } url)
            {
                addresses.Add(url);
            }
        }

        return addresses;
    }
}
