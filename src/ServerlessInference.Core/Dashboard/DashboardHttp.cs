using System.Collections.Frozen;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using ServerlessInference.Gateway;

namespace ServerlessInference.Dashboard;

/// <summary><c>GET /dashboard</c>: the operator's live page (one HTML, one JS, one CSS file embedded in this assembly), so the
/// DevHost and the Functions app serve the very same bytes. The page is static and anonymous; the data it polls
/// (<c>/status</c>, <c>/metrics</c>, relative to its own address) needs an admin key when keys exist, which the page asks for.</summary>
/// <remarks>A strict Content-Security-Policy (everything from this origin, no inline script or style) keeps the page from
/// loading anything else: no CDN, no framework. Thread-safe: the assets are read once, at type initialization.</remarks>
public static class DashboardHttp
{
    public const string Path = "/dashboard";

    /// <summary>What the page may load: its own script and style, <c>/status</c> and <c>/metrics</c> of its origin, and
    /// nothing else; no inline script, no framing.</summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private const string PageName = "dashboard.html";

    private static readonly FrozenDictionary<string, (string ContentType, byte[] Body)> s_assets = new Dictionary<string, (string, byte[])>
    {
        [PageName] = ("text/html; charset=utf-8", Read(PageName)),
        ["dashboard.js"] = ("text/javascript; charset=utf-8", Read("dashboard.js")),
        ["dashboard.css"] = ("text/css; charset=utf-8", Read("dashboard.css")),
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>The asset names the page loads beside itself (<c>/dashboard/{file}</c>).</summary>
    public static IEnumerable<string> Files => s_assets.Keys.Where(k => k != PageName);

    /// <summary>Maps <c>GET /dashboard</c> and <c>GET /dashboard/{file}</c>.</summary>
    public static IEndpointRouteBuilder MapDashboard(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet(Path, (HttpContext c) => PageAsync(c));
        endpoints.MapGet(Path + "/{file}", (HttpContext c, string file) => FileAsync(c, file));
        return endpoints;
    }

    /// <summary><c>GET /dashboard</c>: the page. Anonymous: it holds no data. <c>/dashboard/</c> redirects to
    /// <c>/dashboard</c>, where the page's relative addresses (its files, <c>status</c>, <c>metrics</c>) resolve.</summary>
    public static Task PageAsync(HttpContext context)
    {
        if (context.Request.Path.Value?.EndsWith('/') == true)
        {
            context.Response.Redirect($"{context.Request.PathBase}{Path}{context.Request.QueryString}", permanent: true);
            return Task.CompletedTask;
        }

        return WriteAsync(context, s_assets[PageName]);
    }

    /// <summary><c>GET /dashboard/{file}</c>: the page's script or style sheet; any other name is 404.</summary>
    public static Task FileAsync(HttpContext context, string file) =>
        file != PageName && s_assets.TryGetValue(file, out var asset)
            ? WriteAsync(context, asset)
            : GatewayHttp.WriteErrorAsync(context, StatusCodes.Status404NotFound,
                $"unknown dashboard file '{file}' (there are {string.Join(", ", Files.Order(StringComparer.Ordinal))})", null);

    private static async Task WriteAsync(HttpContext context, (string ContentType, byte[] Body) asset)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = asset.ContentType;
        response.ContentLength = asset.Body.Length;
        response.Headers.CacheControl = "no-cache";
        response.Headers.ContentSecurityPolicy = ContentSecurityPolicy;
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers["Referrer-Policy"] = "no-referrer";
        await response.Body.WriteAsync(asset.Body, context.RequestAborted).ConfigureAwait(false);
    }

    private static byte[] Read(string name)
    {
        using var stream = typeof(DashboardHttp).Assembly.GetManifestResourceStream($"{typeof(DashboardHttp).Namespace}.{name}")
            ?? throw new InvalidOperationException($"the dashboard asset '{name}' is not embedded in {typeof(DashboardHttp).Assembly.GetName().Name}");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
