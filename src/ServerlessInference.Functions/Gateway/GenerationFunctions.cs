using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using ServerlessInference.Gateway;

namespace ServerlessInference.Functions.Gateway;

/// <summary>The generation routes of <see cref="GenerationHttp"/> as HTTP-triggered functions: OpenAI's <c>/v1</c>
/// routes, KServe's generate extension and a job's token stream. With the ASP.NET Core integration the handler writes
/// the response itself, Server-Sent Events included (each event is flushed as it is written). All need a function key:
/// they spend compute or reveal a job's output.</summary>
public static class GenerationFunctions
{
    private static readonly EmptyResult s_written = new();

    [Function("Completions")]
    public static async Task<IActionResult> CompletionsAsync(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "v1/completions")] HttpRequest request)
    {
        await GenerationHttp.OpenAiAsync(request.HttpContext, chat: false).ConfigureAwait(false);
        return s_written;
    }

    [Function("ChatCompletions")]
    public static async Task<IActionResult> ChatCompletionsAsync(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "v1/chat/completions")] HttpRequest request)
    {
        await GenerationHttp.OpenAiAsync(request.HttpContext, chat: true).ConfigureAwait(false);
        return s_written;
    }

    [Function("ListModels")]
    public static async Task<IActionResult> ListModelsAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v1/models")] HttpRequest request)
    {
        await GenerationHttp.ListModelsAsync(request.HttpContext).ConfigureAwait(false);
        return s_written;
    }

    [Function("GetOpenAiModel")]
    public static async Task<IActionResult> GetModelAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v1/models/{model}")] HttpRequest request, string model)
    {
        await GenerationHttp.GetModelAsync(request.HttpContext, model).ConfigureAwait(false);
        return s_written;
    }

    [Function("Generate")]
    public static async Task<IActionResult> GenerateAsync(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "v2/models/{model}/generate")] HttpRequest request, string model)
    {
        await GenerationHttp.GenerateAsync(request.HttpContext, model, null, stream: false).ConfigureAwait(false);
        return s_written;
    }

    [Function("GenerateVersion")]
    public static async Task<IActionResult> GenerateVersionAsync(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "v2/models/{model}/versions/{version}/generate")] HttpRequest request, string model, string version)
    {
        await GenerationHttp.GenerateAsync(request.HttpContext, model, version, stream: false).ConfigureAwait(false);
        return s_written;
    }

    [Function("GenerateStream")]
    public static async Task<IActionResult> GenerateStreamAsync(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "v2/models/{model}/generate_stream")] HttpRequest request, string model)
    {
        await GenerationHttp.GenerateAsync(request.HttpContext, model, null, stream: true).ConfigureAwait(false);
        return s_written;
    }

    [Function("GenerateStreamVersion")]
    public static async Task<IActionResult> GenerateStreamVersionAsync(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "v2/models/{model}/versions/{version}/generate_stream")] HttpRequest request, string model, string version)
    {
        await GenerationHttp.GenerateAsync(request.HttpContext, model, version, stream: true).ConfigureAwait(false);
        return s_written;
    }

    [Function("JobStream")]
    public static async Task<IActionResult> JobStreamAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "jobs/{id}/stream")] HttpRequest request, string id)
    {
        await GenerationHttp.JobStreamAsync(request.HttpContext, id).ConfigureAwait(false);
        return s_written;
    }
}
