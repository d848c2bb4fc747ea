using System.Runtime.CompilerServices;
using System.Text;

namespace ServerlessInference.Cli.Generation;

/// <summary>One Server-Sent Event: its type (<c>message</c> when none was named), data (lines joined by <c>\n</c>)
/// and id.</summary>
public sealed record SseEvent(string Event, string Data, string? Id);

/// <summary>Reads a <c>text/event-stream</c> per the HTML living standard's parsing rules: fields <c>event</c>,
/// <c>data</c>, <c>id</c>; lines starting with <c>:</c> are comments; an empty line dispatches; an event with no data
/// lines is not dispatched.</summary>
public static class SseReader
{
    public static async IAsyncEnumerable<SseEvent> ReadAsync(Stream stream, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8);
        string? type = null, id = null;
        StringBuilder? data = null;
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (line.Length == 0)
            {
                if (data is not null)
                {
                    yield return new SseEvent(type ?? "message", data.ToString(), id);
                }

                (type, data) = (null, null);
                continue;
            }

            if (line[0] == ':')
            {
                continue;
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? "" : line[(colon + 1)..];
            if (value.StartsWith(' '))
            {
                value = value[1..];
            }

            switch (field)
            {
                case "event":
                    type = value;
                    break;
                case "data":
                    data = data is null ? new StringBuilder(value) : data.Append('\n').Append(value);
                    break;
                case "id" when !value.Contains('\0', StringComparison.Ordinal):
                    id = value;
                    break;
            }
        }
    }
}
