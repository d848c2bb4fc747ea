using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Azure.Functions.Worker;
using ServerlessInference.Functions.Scaling;
using ServerlessInference.Gateway;

namespace ServerlessInference.Functions.Tests.Gateway;

public sealed class GatewayFunctionsTests
{
    /// <summary>The DevHost's routes without <c>/metrics</c>, and who may call each route: a function key where the route
    /// spends compute or shows jobs, models or workers; anonymous for probes and server metadata.</summary>
    public static TheoryData<string, string, AuthorizationLevel> Routes { get; } = new()
    {
        { "POST", "v2/models/{model}/infer", AuthorizationLevel.Function },
        { "POST", "v2/models/{model}/versions/{version}/infer", AuthorizationLevel.Function },
        { "GET", "jobs/{id}", AuthorizationLevel.Function },
        { "DELETE", "jobs/{id}", AuthorizationLevel.Function },
        { "GET", "status", AuthorizationLevel.Function },
        { "GET", "v2/models/{model}", AuthorizationLevel.Function },
        { "GET", "v2/models/{model}/versions/{version}", AuthorizationLevel.Function },
        { "GET", "v2/models/{model}/ready", AuthorizationLevel.Function },
        { "GET", "v2/models/{model}/versions/{version}/ready", AuthorizationLevel.Function },
        { "GET", "v2/health/live", AuthorizationLevel.Anonymous },
        { "GET", "v2/health/ready", AuthorizationLevel.Anonymous },
        { "GET", "v2", AuthorizationLevel.Anonymous },
        { "POST", "v1/completions", AuthorizationLevel.Function },
        { "POST", "v1/chat/completions", AuthorizationLevel.Function },
        { "GET", "v1/models", AuthorizationLevel.Function },
        { "GET", "v1/models/{model}", AuthorizationLevel.Function },
        { "POST", "v2/models/{model}/generate", AuthorizationLevel.Function },
        { "POST", "v2/models/{model}/versions/{version}/generate", AuthorizationLevel.Function },
        { "POST", "v2/models/{model}/generate_stream", AuthorizationLevel.Function },
        { "POST", "v2/models/{model}/versions/{version}/generate_stream", AuthorizationLevel.Function },
        { "GET", "jobs/{id}/stream", AuthorizationLevel.Function },
        { "GET", "dashboard", AuthorizationLevel.Anonymous },
        { "GET", "dashboard/{file}", AuthorizationLevel.Anonymous },
    };

    [Theory]
    [MemberData(nameof(Routes))]
    public void HttpFunction_Route_HasItsMethodAndKeyLevel(string method, string route, AuthorizationLevel level)
    {
        var function = Assert.Single(HttpFunction.All, f => f.Route == route && f.HttpMethods.Contains(method));

        Assert.Equal([method], function.HttpMethods);
        Assert.Equal(level, function.Level);
        Assert.Equal(typeof(Task<Microsoft.AspNetCore.Mvc.IActionResult>), function.Method.ReturnType);
    }

    [Fact]
    public void HttpFunctions_AreExactlyTheDevHostGatewayRoutes()
    {
        var app = WebApplication.CreateSlimBuilder().Build();
        app.MapInferenceGateway();
        var devHost = ((IEndpointRouteBuilder)app).DataSources.SelectMany(d => d.Endpoints).OfType<RouteEndpoint>()
            .SelectMany(e => e.Metadata.GetMetadata<IHttpMethodMetadata>()!.HttpMethods.Select(m => $"{m} {e.RoutePattern.RawText!.TrimStart('/')}"))
            .Order().ToList();

        var functions = HttpFunction.All.SelectMany(f => f.HttpMethods.Select(m => $"{m} {f.Route}")).Order().ToList();

        Assert.Equal(devHost, functions);
        Assert.Equal(Routes.Count, functions.Count);
        Assert.DoesNotContain(functions, f => f.Contains("metrics", StringComparison.Ordinal));
    }

    [Fact]
    public void HostJson_RoutePrefix_IsEmptySoPathsAreTheOipPaths()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(RepoFiles.Path("src", "ServerlessInference.Functions", "host.json")));

        Assert.Equal("2.0", json.RootElement.GetProperty("version").GetString());
        Assert.Equal("", json.RootElement.GetProperty("extensions").GetProperty("http").GetProperty("routePrefix").GetString());
    }

    [Fact]
    public void ScalerFunction_Schedule_IsTheAppSetting()
    {
        var method = typeof(ScalerFunction).GetMethod(nameof(ScalerFunction.RunAsync))!;

        var trigger = method.GetParameters().Select(p => p.GetCustomAttribute<TimerTriggerAttribute>()).Single(a => a is not null)!;

        Assert.Equal("Scaler", method.GetCustomAttribute<FunctionAttribute>()!.Name);
        Assert.Equal($"%{ScalerFunction.ScheduleSetting}%", trigger.Schedule);
        Assert.False(trigger.RunOnStartup);
    }
}
