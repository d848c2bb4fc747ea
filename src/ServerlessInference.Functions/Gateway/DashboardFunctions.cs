using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using ServerlessInference.Dashboard;

namespace ServerlessInference.Functions.Gateway;

/// <summary><c>GET /dashboard</c> and its files: the same embedded page the DevHost serves (<see cref="DashboardHttp"/>).
/// Anonymous: the page holds no data. It reads <c>/status</c> relative to its own address, which needs a function key:
/// open it as <c>/dashboard?code=KEY</c> and the page passes the key on. This app has no <c>/metrics</c> (metrics leave
/// over OTLP), so the page draws what <c>/status</c> holds and says so.</summary>
public static class DashboardFunctions
{
    private static readonly EmptyResult s_written = new();

    [Function("Dashboard")]
    public static async Task<IActionResult> PageAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "dashboard")] HttpRequest request)
    {
        await DashboardHttp.PageAsync(request.HttpContext).ConfigureAwait(false);
        return s_written;
    }

    [Function("DashboardFile")]
    public static async Task<IActionResult> FileAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "dashboard/{file}")] HttpRequest request, string file)
    {
        await DashboardHttp.FileAsync(request.HttpContext, file).ConfigureAwait(false);
        return s_written;
    }
}
