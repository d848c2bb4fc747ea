using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using ServerlessInference.Gateway;

namespace ServerlessInference.Functions.Gateway;

/// <summary>The gateway's HTTP surface (every route of <see cref="GatewayHttp"/> but <c>/metrics</c>) as HTTP-triggered functions. Each one
/// hands <see cref="HttpRequest.HttpContext"/> to the <see cref="GatewayHttp"/> handler the DevHost maps, so both hosts
/// run the same request handling; host.json sets <c>routePrefix</c> to <c>""</c>, so the paths are the OIP paths.</summary>
/// <remarks>
/// With the ASP.NET Core integration the handler writes the response itself (status, headers, body); the function then
/// returns <see cref="EmptyResult"/>, which the worker executes as "write nothing more".
/// Keys: infer, jobs, status and model metadata/readiness need a function key (<c>x-functions-key</c> header or
/// <c>code</c> query): they reveal or spend something (the catalog of models and their signatures, queued work, compute).
/// Liveness, readiness and server metadata are anonymous so probes and load balancers need no secret.
/// On top, the handlers check the platform's API keys (<c>Security.GatewayAuth</c>): once any exists, every route but
/// health needs one too (server metadata included), and jobs are their tenant's only.
/// </remarks>
public static class GatewayFunctions
{
    private static readonly EmptyResult s_written = new();

    [Function("Infer")]
    public static async Task<IActionResult> InferAsync(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "v2/models/{model}/infer")] HttpRequest request, string model)
    {
        await GatewayHttp.InferAsync(request.HttpContext, model, null).ConfigureAwait(false);
        return s_written;
    }

    [Function("InferVersion")]
    public static async Task<IActionResult> InferVersionAsync(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "v2/models/{model}/versions/{version}/infer")] HttpRequest request, string model, string version)
    {
        await GatewayHttp.InferAsync(request.HttpContext, model, version).ConfigureAwait(false);
        return s_written;
    }

    [Function("GetJob")]
    public static async Task<IActionResult> GetJobAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "jobs/{id}")] HttpRequest request, string id)
    {
        await GatewayHttp.GetJobAsync(request.HttpContext, id).ConfigureAwait(false);
        return s_written;
    }

    [Function("CancelJob")]
    public static async Task<IActionResult> CancelJobAsync(
        [HttpTrigger(AuthorizationLevel.Function, "delete", Route = "jobs/{id}")] HttpRequest request, string id)
    {
        await GatewayHttp.CancelJobAsync(request.HttpContext, id).ConfigureAwait(false);
        return s_written;
    }

    [Function("HealthLive")]
    public static async Task<IActionResult> LiveAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "v2/health/live")] HttpRequest request)
    {
        await GatewayHttp.LiveAsync(request.HttpContext).ConfigureAwait(false);
        return s_written;
    }

    [Function("HealthReady")]
    public static async Task<IActionResult> ReadyAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "v2/health/ready")] HttpRequest request)
    {
        await GatewayHttp.ReadyAsync(request.HttpContext).ConfigureAwait(false);
        return s_written;
    }

    [Function("ServerMetadata")]
    public static async Task<IActionResult> ServerMetadataAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "v2")] HttpRequest request)
    {
        await GatewayHttp.ServerMetadataAsync(request.HttpContext).ConfigureAwait(false);
        return s_written;
    }

    [Function("ModelMetadata")]
    public static async Task<IActionResult> ModelMetadataAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v2/models/{model}")] HttpRequest request, string model)
    {
        await GatewayHttp.ModelMetadataAsync(request.HttpContext, model, null).ConfigureAwait(false);
        return s_written;
    }

    [Function("ModelVersionMetadata")]
    public static async Task<IActionResult> ModelVersionMetadataAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v2/models/{model}/versions/{version}")] HttpRequest request, string model, string version)
    {
        await GatewayHttp.ModelMetadataAsync(request.HttpContext, model, version).ConfigureAwait(false);
        return s_written;
    }

    [Function("ModelReady")]
    public static async Task<IActionResult> ModelReadyAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v2/models/{model}/ready")] HttpRequest request, string model)
    {
        await GatewayHttp.ModelReadyAsync(request.HttpContext, model, null).ConfigureAwait(false);
        return s_written;
    }

    [Function("ModelVersionReady")]
    public static async Task<IActionResult> ModelVersionReadyAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v2/models/{model}/versions/{version}/ready")] HttpRequest request, string model, string version)
    {
        await GatewayHttp.ModelReadyAsync(request.HttpContext, model, version).ConfigureAwait(false);
        return s_written;
    }

    [Function("Status")]
    public static async Task<IActionResult> StatusAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "status")] HttpRequest request)
    {
        await GatewayHttp.StatusAsync(request.HttpContext).ConfigureAwait(false);
        return s_written;
    }
}
