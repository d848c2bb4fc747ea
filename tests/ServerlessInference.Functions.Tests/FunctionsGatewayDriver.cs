using System.Reflection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Abstractions;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Template;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.DependencyInjection;
using ServerlessInference.Functions.Gateway;
using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.Functions.Tests;

/// <summary>One HTTP-triggered function of the app, as its attributes declare it.</summary>
public sealed class HttpFunction
{
    private readonly TemplateMatcher _matcher;

    private HttpFunction(string name, MethodInfo method, HttpTriggerAttribute trigger)
    {
        Name = name;
        Method = method;
        Route = trigger.Route ?? throw new InvalidOperationException($"function {name} has no route");
        HttpMethods = (trigger.Methods ?? []).Select(m => m.ToUpperInvariant()).ToList();
        Level = trigger.AuthLevel;
        _matcher = new TemplateMatcher(TemplateParser.Parse(Route), []);
    }

    public string Name { get; }

    public MethodInfo Method { get; }

    public string Route { get; }

    public IReadOnlyList<string> HttpMethods { get; }

    public AuthorizationLevel Level { get; }

    /// <summary>Every <see cref="FunctionAttribute"/> method of the Functions assembly with an HTTP trigger.</summary>
    public static IReadOnlyList<HttpFunction> All { get; } = typeof(GatewayFunctions).Assembly.GetTypes()
        .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly))
        .Select(m => (Method: m, Function: m.GetCustomAttribute<FunctionAttribute>(),
            Trigger: m.GetParameters().Select(p => p.GetCustomAttribute<HttpTriggerAttribute>()).SingleOrDefault(a => a is not null)))
        .Where(x => x.Function is not null && x.Trigger is not null)
        .Select(x => new HttpFunction(x.Function!.Name, x.Method, x.Trigger!))
        .ToList();

    public RouteValueDictionary? Match(string method, PathString path)
    {
        var values = new RouteValueDictionary();
        return HttpMethods.Contains(method.ToUpperInvariant()) && _matcher.TryMatch(path, values) ? values : null;
    }

    /// <summary>Calls the function as the worker does: trigger and route values bound to its parameters, then the
    /// returned <see cref="IActionResult"/> executed against the request's <see cref="HttpContext"/>.</summary>
    public async Task InvokeAsync(HttpContext context, RouteValueDictionary values)
    {
        var arguments = Method.GetParameters().Select(p => p.ParameterType == typeof(HttpRequest)
            ? context.Request
            : p.ParameterType == typeof(string) && values.TryGetValue(p.Name!, out var value)
                ? (object?)Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)
                : throw new InvalidOperationException($"function {Name}: cannot bind parameter '{p.Name}'")).ToArray();
        var target = Method.IsStatic ? null : ActivatorUtilities.CreateInstance(context.RequestServices, Method.DeclaringType!);
        var result = await ((Task<IActionResult>)Method.Invoke(target, arguments)!).ConfigureAwait(false);
        await result.ExecuteResultAsync(new ActionContext(context, new RouteData(values), new ActionDescriptor())).ConfigureAwait(false);
    }
}

/// <summary>Drives the Functions app's gateway through its function classes: the route and method pick the function by
/// its trigger attributes, as the Functions host routes, and the request runs in a DI scope of the app's services.</summary>
public sealed class FunctionsGatewayDriver(IServiceProvider services) : IGatewayDriver
{
    public async Task<GatewayResponse> SendAsync(GatewayRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var query = request.Path.IndexOf('?', StringComparison.Ordinal);
        var path = new PathString(query < 0 ? request.Path : request.Path[..query]);
        var matches = HttpFunction.All.Select(f => (Function: f, Values: f.Match(request.Method, path))).Where(m => m.Values is not null).ToList();
        if (matches.Count > 1)
        {
            throw new InvalidOperationException($"{request.Method} {path} matches several functions: {string.Join(", ", matches.Select(m => m.Function.Name))}");
        }

        if (matches.Count == 0)
        {
            return new GatewayResponse(StatusCodes.Status404NotFound, new Dictionary<string, string>(), []);
        }

        await using var scope = services.CreateAsyncScope();
        var context = new DefaultHttpContext { RequestServices = scope.ServiceProvider };
        context.Request.Method = request.Method;
        context.Request.Path = path;
        if (query >= 0)
        {
            context.Request.QueryString = new QueryString(request.Path[query..]);
        }

        foreach (var (name, value) in request.Headers)
        {
            context.Request.Headers[name] = value;
        }

        if (request.Content is { } content)
        {
            foreach (var (name, value) in content.Headers ?? new Dictionary<string, string>())
            {
                context.Request.Headers[name] = value;
            }

            context.Request.ContentType = content.ContentType;
            context.Request.ContentLength = content.Body.Length;
            context.Request.Body = new MemoryStream(content.Body, writable: false);
        }

        using var body = new MemoryStream();
        context.Response.Body = body;
        var (function, values) = matches[0];
        await function.InvokeAsync(context, values!);

        var headers = context.Response.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
        return new GatewayResponse(context.Response.StatusCode, headers, body.ToArray());
    }
}
