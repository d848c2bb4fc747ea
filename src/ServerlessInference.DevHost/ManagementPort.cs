using Microsoft.Extensions.Options;
using ServerlessInference.Dashboard;
using ServerlessInference.Gateway;
using ServerlessInference.Protocol;
using ServerlessInference.Security;

namespace ServerlessInference.DevHost;

/// <summary><c>/status</c> and <c>/metrics</c> (and <c>/dashboard</c>, which reads them) apart from the public routes. With
/// <c>Inference:Auth:ManagementUrl</c> the host listens there too: that port serves them (and health) without a key, and
/// nothing else; the public port does not serve them at all (404). Without it, <c>/metrics</c> needs an admin key like <c>/status</c>.</summary>
public static class ManagementPort
{
    public const string UrlSetting = AuthOptions.Section + ":ManagementUrl";

    /// <summary>Adds the management address to the addresses the host listens on.</summary>
    public static WebApplicationBuilder UseManagementUrl(this WebApplicationBuilder builder)
    {
        if (builder.Configuration[UrlSetting] is { Length: > 0 } management)
        {
            var urls = builder.Configuration["urls"] is { Length: > 0 } configured ? configured : builder.Configuration["ASPNETCORE_URLS"];
            builder.WebHost.UseUrls(string.IsNullOrEmpty(urls) ? management : urls + ";" + management);
        }

        return builder;
    }

    /// <summary>The middleware that keeps management routes and public routes on their own ports, and admits
    /// <c>/metrics</c> (an exporter, not a gateway handler) like <c>/status</c>.</summary>
    public static IApplicationBuilder UseManagementPort(this IApplicationBuilder app)
    {
        var port = app.ApplicationServices.GetRequiredService<IOptions<AuthOptions>>().Value.ManagementPort;
        return app.Use(async (context, next) =>
        {
            var path = context.Request.Path;
            var management = path.Equals("/status", StringComparison.Ordinal) || path.Equals("/metrics", StringComparison.Ordinal)
                || path.StartsWithSegments(DashboardHttp.Path, StringComparison.Ordinal); // the page reads /status and /metrics beside it
            if (port is int managementPort)
            {
                var onManagementPort = context.Connection.LocalPort == managementPort;
                if (onManagementPort != management && !path.StartsWithSegments("/v2/health", StringComparison.Ordinal))
                {
                    await GatewayHttp.WriteErrorAsync(context, StatusCodes.Status404NotFound,
                        onManagementPort ? "the management port serves /status, /metrics, /dashboard and health only" : $"not found (served on the management port, {UrlSetting})", null).ConfigureAwait(false);
                    return;
                }
            }
            else if (path.Equals("/metrics", StringComparison.Ordinal))
            {
                try
                {
                    await GatewayAuth.AuthorizeAdminAsync(context).ConfigureAwait(false);
                }
                catch (InferenceException ex)
                {
                    await GatewayHttp.WriteErrorAsync(context, GatewayHttp.StatusCodeOf(ex.Error), ex.Message, ex.RetryAfterSeconds).ConfigureAwait(false);
                    return;
                }
            }

            await next(context).ConfigureAwait(false);
        });
    }
}
