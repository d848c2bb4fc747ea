using System.Net;
using System.Text;

namespace ServerlessInference.Testing.Http;

/// <summary>An <see cref="HttpMessageHandler"/> that records every request (method, URL, headers, body, and the fake
/// clock's time) and answers from a script, for asserting the exact calls a REST client makes.</summary>
/// <remarks>Answers are taken in order; a request beyond the script goes to the <see cref="Otherwise"/> answer (a
/// stateful fake server) when there is one, else fails the test with the request in the message. A request whose
/// token is already cancelled is neither recorded nor answered, as a real transport never sends it. Derives from
/// <see cref="DelegatingHandler"/> so clients that only take delegating handlers (the Kubernetes client) can use it:
/// it never calls an inner handler. Thread-safe.</remarks>
public sealed class RecordingHttpHandler(TimeProvider? clock = null) : DelegatingHandler
{
    private readonly Lock _lock = new();
    private readonly Queue<Func<RecordedRequest, HttpResponseMessage>> _script = new();
    private readonly List<RecordedRequest> _requests = [];
    private Func<RecordedRequest, HttpResponseMessage>? _otherwise;

    public IReadOnlyList<RecordedRequest> Requests
    {
        get
        {
            lock (_lock)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>Answers the next request with <paramref name="status"/>, a JSON body and optional headers.</summary>
    public RecordingHttpHandler Respond(HttpStatusCode status, string? json = null, params (string Name, string Value)[] headers) =>
        Respond(_ =>
        {
            var response = new HttpResponseMessage(status);
            if (json is not null)
            {
                response.Content = new StringContent(json, Encoding.UTF8, "application/json");
            }

            foreach (var (name, value) in headers)
            {
                response.Headers.TryAddWithoutValidation(name, value);
            }

            return response;
        });

    /// <summary>Answers the next request with whatever <paramref name="answer"/> returns (or throws).</summary>
    public RecordingHttpHandler Respond(Func<RecordedRequest, HttpResponseMessage> answer)
    {
        lock (_lock)
        {
            _script.Enqueue(answer);
        }

        return this;
    }

    /// <summary>Answers every request the script does not with <paramref name="answer"/>.</summary>
    public RecordingHttpHandler Otherwise(Func<RecordedRequest, HttpResponseMessage> answer)
    {
        lock (_lock)
        {
            _otherwise = answer;
        }

        return this;
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        var headers = request.Headers.Concat(request.Content?.Headers ?? Enumerable.Empty<KeyValuePair<string, IEnumerable<string>>>())
            .ToDictionary(h => h.Key, h => string.Join(", ", h.Value), StringComparer.OrdinalIgnoreCase);
        var recorded = new RecordedRequest(request.Method, request.RequestUri!, headers, request.Content?.Headers.ContentType?.MediaType, body, clock?.GetUtcNow());
        Func<RecordedRequest, HttpResponseMessage> answer;
        lock (_lock)
        {
            _requests.Add(recorded);
            answer = _script.TryDequeue(out var scripted) ? scripted
                : _otherwise ?? throw new InvalidOperationException($"unscripted request #{_requests.Count}: {recorded}");
        }

        var response = answer(recorded);
        response.RequestMessage = request;
        return response;
    }
}

/// <summary>One request as the server would have seen it.</summary>
/// <param name="Headers">Request and content headers, values joined by <c>", "</c>.</param>
/// <param name="MediaType">The body's media type without parameters; null without a body.</param>
/// <param name="At">The fake clock's time when it was sent, when the handler has a clock.</param>
public sealed record RecordedRequest(HttpMethod Method, Uri Uri, IReadOnlyDictionary<string, string> Headers, string? MediaType, string? Body, DateTimeOffset? At)
{
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;

    public override string ToString() => $"{Method} {Uri} {Body}";
}
