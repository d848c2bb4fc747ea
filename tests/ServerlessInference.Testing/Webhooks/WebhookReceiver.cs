using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace ServerlessInference.Testing.Webhooks;

/// <summary>A request a <see cref="WebhookReceiver"/> got.</summary>
public sealed record ReceivedWebhook(string Path, IHeaderDictionary Headers, string Body);

/// <summary>A webhook receiver on 127.0.0.1 (a free port): records every request and answers with the next of
/// <see cref="Answers"/> (200 once they run out; a 3xx carries <see cref="RedirectTo"/> as its Location). Dispose to stop.</summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private LoopbackApp? _app;

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
        var receiver = new WebhookReceiver();
        receiver._app = await LoopbackApp.StartAsync(app => app.Run(async context =>
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
        }));
        receiver.BaseUrl = receiver._app.Url;
        return receiver;
    }

    public ValueTask DisposeAsync() => _app?.DisposeAsync() ?? ValueTask.CompletedTask;
}
