using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ServerlessInference.Testing.Webhooks;

/// <summary>A request a <see cref="WebhookReceiver"/> got.</summary>
public sealed record ReceivedWebhook(string Path, IHeaderDictionary Headers, string Body);

/// <summary>A webhook receiver on 127.0.0.1 (a free port): records every request and answers with the next of
/// <see cref="Answers"/> (200 once they run out; a 3xx carries <see cref="RedirectTo"/> as its Location). Dispose to stop.</summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;

    private WebhookReceiver(WebApplication app) => _app = app;

    public ConcurrentQueue<ReceivedWebhook> Received { get; } = new();

    /// <summary>Status codes to answer, in order.</summary>
    public ConcurrentQueue<int> Answers { get; } = new();

    public string RedirectTo { get; set; } = "http://10.0.0.1/hook";

    /// <summary>The receiver's base URL, <c>http://127.0.0.1:PORT</c>.</summary>
    public string BaseUrl { get; private set; } = "";

    public int Port => new Uri(BaseUrl).Port;

    /// <summary>Fires on every request, after it is recorded.</summary>
    public event Action? Hit;

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.Run(async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync();
            receiver.Received.Enqueue(new ReceivedWebhook(context.Request.Path, new HeaderDictionary(context.Request.Headers.ToDictionary()), body));
            var status = receiver.Answers.TryDequeue(out var next) ? next : 200;
            context.Response.StatusCode = status;
            if (status is >= 300 and < 400)
            {
                context.Response.Headers.Location = receiver.RedirectTo;
            }

            receiver.Hit?.Invoke();
        });
        await app.StartAsync();
        receiver.BaseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
