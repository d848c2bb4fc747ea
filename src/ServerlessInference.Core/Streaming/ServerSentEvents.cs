using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace ServerlessInference.Streaming;

/// <summary>Writes Server-Sent Events as the WHATWG HTML standard defines them (§9.2 "Server-sent events"): UTF-8,
/// one <c>field: value</c> line per field, <c>id</c>, <c>event</c>, then the data as one <c>data</c> line per line of
/// it, and a blank line that dispatches the event; comment lines (<c>:</c>) keep an idle connection open.</summary>
/// <remarks>Every write flushes, so an event leaves as soon as it is written. Lines end in LF; a CR LF or CR inside
/// data splits it into lines like LF does, so a client reads every line break back as LF (the standard's parsing).
/// Writers are not thread-safe: one writer per response.</remarks>
public static class ServerSentEvents
{
    /// <summary>The media type of an event stream.</summary>
    public const string ContentType = "text/event-stream";

    /// <summary>The request header a reconnecting client sends with the id of the last event it received.</summary>
    public const string LastEventIdHeader = "Last-Event-ID";

    /// <summary>Makes <paramref name="response"/> an event stream: 200, <c>Content-Type: text/event-stream</c>,
    /// <c>Cache-Control: no-cache</c>, and no response buffering (by the server, or by a proxy that honours
    /// <c>X-Accel-Buffering</c>). Call it before the first write.</summary>
    public static void Start(HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = ContentType;
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        response.HttpContext.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
    }

    /// <summary>Writes one event to <paramref name="response"/>'s body and flushes it.</summary>
    /// <inheritdoc cref="WriteEventAsync(Stream, string?, string?, string, CancellationToken)"/>
    public static Task WriteEventAsync(HttpResponse response, string? id, string? eventName, string data, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(response);
        return WriteEventAsync(response.Body, id, eventName, data, cancellationToken);
    }

    /// <summary>Writes one event and flushes <paramref name="stream"/>.</summary>
    /// <param name="stream">The response body.</param>
    /// <param name="id">The event id (the client's next <c>Last-Event-ID</c>); null writes none. An empty id resets the
    /// client's last event id.</param>
    /// <param name="eventName">The event type; null or empty writes none (the client sees <c>message</c>).</param>
    /// <param name="data">The data, any text; empty sends an event with empty data.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <exception cref="ArgumentException">The id holds CR, LF or NUL, or the event name holds CR or LF: neither can be
    /// sent as one field.</exception>
    public static Task WriteEventAsync(Stream stream, string? id, string? eventName, string data, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(data);
        if (id is not null && id.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)
        {
            throw new ArgumentException("an SSE event id must not contain CR, LF or NUL", nameof(id));
        }

        if (eventName is not null && eventName.AsSpan().IndexOfAny('\r', '\n') >= 0)
        {
            throw new ArgumentException("an SSE event name must not contain CR or LF", nameof(eventName));
        }

        var text = new StringBuilder(data.Length + 32);
        if (id is not null)
        {
            text.Append("id: ").Append(id).Append('\n');
        }

        if (!string.IsNullOrEmpty(eventName))
        {
            text.Append("event: ").Append(eventName).Append('\n');
        }

        AppendLines(text, "data: ", data);
        text.Append('\n');
        return WriteAsync(stream, text, cancellationToken);
    }

    /// <summary>Writes a comment (ignored by clients; keeps an idle connection and its proxies from timing out) and
    /// flushes <paramref name="response"/>'s body.</summary>
    public static Task WriteCommentAsync(HttpResponse response, string comment, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(response);
        return WriteCommentAsync(response.Body, comment, cancellationToken);
    }

    /// <summary>Writes a comment, one <c>:</c> line per line of <paramref name="comment"/>, and flushes.</summary>
    public static Task WriteCommentAsync(Stream stream, string comment, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(comment);
        var text = new StringBuilder(comment.Length + 4);
        AppendLines(text, ": ", comment);
        return WriteAsync(stream, text, cancellationToken);
    }

    /// <summary>Reads a <c>Last-Event-ID</c> header this platform's streams can resume from: absent or blank is -1 (from
    /// the start), a sequence (decimal digits) is itself; anything else is not one of our ids.</summary>
    /// <returns>False for a value that is not a sequence (answer 400 rather than replay from the start).</returns>
    public static bool TryParseLastEventId(string? value, out long afterSequence)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            afterSequence = -1;
            return true;
        }

        return long.TryParse(value.AsSpan().Trim(" \t"), NumberStyles.None, CultureInfo.InvariantCulture, out afterSequence)
            || Fail(out afterSequence);

        static bool Fail(out long afterSequence)
        {
            afterSequence = -1;
            return false;
        }
    }

    private static void AppendLines(StringBuilder text, string prefix, string value)
    {
        var rest = value.AsSpan();
        while (true)
        {
            var end = rest.IndexOfAny('\r', '\n');
            text.Append(prefix).Append(end < 0 ? rest : rest[..end]).Append('\n');
            if (end < 0)
            {
                return;
            }

            var skip = rest[end] == '\r' && end + 1 < rest.Length && rest[end + 1] == '\n' ? 2 : 1;
            rest = rest[(end + skip)..];
        }
    }

    private static async Task WriteAsync(Stream stream, StringBuilder text, CancellationToken cancellationToken)
    {
        var length = Encoding.UTF8.GetMaxByteCount(text.Length);
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            // One encoder across the chunks, so a surrogate pair split between two of them stays one character.
            var encoder = Encoding.UTF8.GetEncoder();
            var written = 0;
            foreach (var chunk in text.GetChunks())
            {
                written += encoder.GetBytes(chunk.Span, buffer.AsSpan(written), flush: false);
            }

            written += encoder.GetBytes([], buffer.AsSpan(written), flush: true);

            await stream.WriteAsync(buffer.AsMemory(0, written), cancellationToken).ConfigureAwait(false);
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
