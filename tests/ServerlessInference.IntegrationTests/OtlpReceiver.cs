using System.Collections.Concurrent;
using System.IO.Compression;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

using ServerlessInference.Testing;

namespace ServerlessInference.IntegrationTests;

/// <summary>A span as an OTLP export carried it.</summary>
public sealed record OtlpSpan(string Service, string TraceId, string SpanId, string ParentSpanId, string Name);

/// <summary>A tiny OTLP/HTTP receiver on 127.0.0.1 (a free port): <c>POST /v1/traces</c> bodies are decoded from the
/// protobuf wire format by hand (only the fields a test reads: resource <c>service.name</c>, span ids and names), the
/// other signals are accepted and dropped. Dispose to stop it.</summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private LoopbackApp? _app;

    public ConcurrentQueue<OtlpSpan> Spans { get; } = new();

    /// <summary>The base URL to set as <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> (with protocol <c>http/protobuf</c>).</summary>
    public string Endpoint { get; private set; } = "";

    public static async Task<OtlpReceiver> StartAsync()
    {
        var receiver = new OtlpReceiver();
        receiver._app = await LoopbackApp.StartAsync(app =>
        {
            app.MapPost("/v1/traces", async (HttpRequest request) =>
            {
                using var body = new MemoryStream();
                var stream = request.Headers.ContentEncoding == "gzip" ? new GZipStream(request.Body, CompressionMode.Decompress) : request.Body;
                await stream.CopyToAsync(body);
                receiver.Read(body.ToArray());
                return Results.Bytes([], "application/x-protobuf");
            });
            app.MapPost("/v1/{signal}", () => Results.Bytes([], "application/x-protobuf"));
        });
        receiver.Endpoint = receiver._app.Url;
        return receiver;
    }

    public ValueTask DisposeAsync() => _app?.DisposeAsync() ?? ValueTask.CompletedTask;

    /// <summary>ExportTraceServiceRequest: resource_spans = 1 { resource = 1 { attributes = 1 }, scope_spans = 2
    /// { spans = 2 { trace_id = 1, span_id = 2, parent_span_id = 4, name = 5 } } }.</summary>
    private void Read(ReadOnlyMemory<byte> request)
    {
        foreach (var resourceSpans in Fields(request).Where(f => f.Number == 1))
        {
            var service = "";
            foreach (var field in Fields(resourceSpans.Bytes))
            {
                if (field.Number == 1)
                {
                    foreach (var attribute in Fields(field.Bytes).Where(a => a.Number == 1))
                    {
                        var parts = Fields(attribute.Bytes).ToList();
                        if (Text(parts, 1) == "service.name" && parts.FirstOrDefault(p => p.Number == 2) is { Bytes: var value })
                        {
                            service = Text(Fields(value).ToList(), 1);
                        }
                    }
                }
                else if (field.Number == 2)
                {
                    foreach (var span in Fields(field.Bytes).Where(s => s.Number == 2))
                    {
                        var parts = Fields(span.Bytes).ToList();
                        Spans.Enqueue(new OtlpSpan(service, Hex(parts, 1), Hex(parts, 2), Hex(parts, 4), Text(parts, 5)));
                    }
                }
            }
        }
    }

    private static string Hex(List<(int Number, ReadOnlyMemory<byte> Bytes)> fields, int number) =>
        fields.FirstOrDefault(f => f.Number == number) is { Bytes: var bytes } ? Convert.ToHexStringLower(bytes.Span) : "";

    private static string Text(List<(int Number, ReadOnlyMemory<byte> Bytes)> fields, int number) =>
        fields.FirstOrDefault(f => f.Number == number) is { Bytes: var bytes } ? System.Text.Encoding.UTF8.GetString(bytes.Span) : "";

    /// <summary>The length-delimited fields of a message (varint and fixed fields are skipped: none is read here).</summary>
    private static IEnumerable<(int Number, ReadOnlyMemory<byte> Bytes)> Fields(ReadOnlyMemory<byte> message)
    {
        var position = 0;
        while (position < message.Length)
        {
            var key = Varint(message.Span, ref position);
            var number = (int)(key >> 3);
            switch (key & 7)
            {
                case 0:
                    Varint(message.Span, ref position);
                    break;
                case 1:
                    position += 8;
                    break;
                case 2:
                    var length = (int)Varint(message.Span, ref position);
                    yield return (number, message.Slice(position, length));
                    position += length;
                    break;
                case 5:
                    position += 4;
                    break;
                default:
                    throw new InvalidDataException($"wire type {key & 7} at byte {position}");
            }
        }
    }

    private static ulong Varint(ReadOnlySpan<byte> data, ref int position)
    {
        ulong value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = data[position++];
            value |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }
    }
}
