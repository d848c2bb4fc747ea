using System.Text.RegularExpressions;

namespace ServerlessInference.Protocol;

/// <summary>Makes an error text fit for a client: local file paths (a model cache, a weights file, an ONNX Runtime
/// message that names the file it failed on) become their last segment, so a response never tells a caller how the
/// server's disk is laid out.</summary>
/// <remarks>Applied where an engine or store failure becomes a client error: the worker's job results and stream
/// errors, and the gateway's error writers. The log keeps the full text. URLs (<c>scheme://</c>) and the platform's routes
/// (<c>/v1/completions</c>) are left alone; the rewrite is idempotent.</remarks>
public static partial class ClientErrorText
{
    public static string Scrub(string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.IndexOfAny(['/', '\\']) < 0)
        {
            return message;
        }

        message = UnixPath().Replace(message, m => ".../" + LastSegment(m.Value, '/'));
        return WindowsPath().Replace(message, m => "...\\" + LastSegment(m.Value, '\\'));
    }

    private static string LastSegment(string path, char separator)
    {
        var trimmed = path.TrimEnd(separator);
        return trimmed[(trimmed.LastIndexOf(separator) + 1)..];
    }

    // An absolute (/, ~/) or relative (./, ../) path with at least two separators, not inside a URL or a word, and
    // not one of the platform's own routes (/v1/..., /v2/..., /jobs/...), which error texts may name.
    [GeneratedRegex(@"(?<![\w:/.~\-])(?:~|\.{1,2})?/(?!(?:v1|v2|jobs)/)(?:[^\s/'""`()\[\]<>,;]+/)+[^\s/'""`()\[\]<>,;]*")]
    private static partial Regex UnixPath();

    // A drive-letter path with at least two separators.
    [GeneratedRegex(@"(?<![\w])[A-Za-z]:\\(?:[^\s\\'""`()\[\]<>,;]+\\)+[^\s\\'""`()\[\]<>,;]*")]
    private static partial Regex WindowsPath();
}
