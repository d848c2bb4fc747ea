using System.Net.ServerSentEvents;
using System.Text;
using Microsoft.AspNetCore.Http;
using ServerlessInference.Streaming;

namespace ServerlessInference.Tests.Streaming;

/// <summary>The writer's output is read back with .NET's own spec-following parser (System.Net.ServerSentEvents'
/// <see cref="SseParser"/>), and its bytes are checked against the standard's field syntax.</summary>
public sealed class ServerSentEventsTests
{
    private static async Task<List<SseItem<string>>> ParseAsync(byte[] bytes)
    {
        var items = new List<SseItem<string>>();
        await foreach (var item in SseParser.Create(new MemoryStream(bytes)).EnumerateAsync())
        {
            items.Add(item);
        }

        return items;
    }

    private static async Task<byte[]> WriteAsync(params (string? Id, string? Event, string Data)[] events)
    {
        var stream = new MemoryStream();
        foreach (var (id, name, data) in events)
        {
            await ServerSentEvents.WriteEventAsync(stream, id, name, data, default);
        }

        return stream.ToArray();
    }

    [Fact]
    public async Task WriteEventAsync_OneLineEvent_WritesTheStandardFields()
    {
        var bytes = await WriteAsync(("3", "token", "{\"text\":\"hi\"}"));

        Assert.Equal("id: 3\nevent: token\ndata: {\"text\":\"hi\"}\n\n", Encoding.UTF8.GetString(bytes));
    }

    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("", "")]
    [InlineData("two\nlines", "two\nlines")]
    [InlineData("crlf\r\nand\rcr", "crlf\nand\ncr")]
    [InlineData("ends with a break\n", "ends with a break\n")]
    [InlineData("\n\nleading breaks", "\n\nleading breaks")]
    [InlineData(" leading space and trailing ", " leading space and trailing ")]
    [InlineData("data: looks like a field\n: and a comment\n\nid: 9", "data: looks like a field\n: and a comment\n\nid: 9")]
    [InlineData("wörld 🙂 ✓ \u00e9", "wörld 🙂 ✓ \u00e9")]
    public async Task WriteEventAsync_AnyData_ParsesBackAsWritten(string data, string expected)
    {
        var items = await ParseAsync(await WriteAsync(("1", null, data)));

        var item = Assert.Single(items);
        Assert.Equal(expected, item.Data);
        Assert.Equal("message", item.EventType);
        Assert.Equal("1", item.EventId);
    }

    [Fact]
    public async Task WriteEventAsync_MultiLineData_WritesOneDataLinePerLine()
    {
        var text = Encoding.UTF8.GetString(await WriteAsync((null, null, "a\r\nb\n\nc")));

        Assert.Equal("data: a\ndata: b\ndata: \ndata: c\n\n", text);
    }

    [Fact]
    public async Task WriteEventAsync_ManyEventsAndComments_ParseBackInOrderWithTheirIds()
    {
        var stream = new MemoryStream();
        await ServerSentEvents.WriteCommentAsync(stream, "keep-alive", default);
        await ServerSentEvents.WriteEventAsync(stream, "0", "token", "Hello", default);
        await ServerSentEvents.WriteCommentAsync(stream, "two\nlines", default);
        await ServerSentEvents.WriteEventAsync(stream, "1", null, " world", default);
        await ServerSentEvents.WriteEventAsync(stream, null, "", "no id", default);
        await ServerSentEvents.WriteEventAsync(stream, "2", "done", "[DONE]", default);

        var parser = SseParser.Create(new MemoryStream(stream.ToArray()));
        var items = new List<SseItem<string>>();
        await foreach (var item in parser.EnumerateAsync())
        {
            items.Add(item);
        }

        Assert.Equal(["Hello", " world", "no id", "[DONE]"], items.Select(i => i.Data));
        Assert.Equal(["token", "message", "message", "done"], items.Select(i => i.EventType));
        // SseItem.EventId is the event's own id field; the standard's "last event ID" (what a browser reconnects with)
        // is the parser's LastEventId, which an event without an id leaves as it was.
        Assert.Equal(["0", "1", null, "2"], items.Select(i => i.EventId));
        Assert.Equal("2", parser.LastEventId);
        Assert.StartsWith(": keep-alive\n", Encoding.UTF8.GetString(stream.ToArray()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WriteEventAsync_SurrogatePairAcrossManyChunks_StaysOneCharacter()
    {
        // Long enough that the builder holds several chunks; the emoji lands on chunk boundaries somewhere.
        var data = string.Concat(Enumerable.Repeat("ab🙂", 20_000));

        var item = Assert.Single(await ParseAsync(await WriteAsync(("1", null, data))));

        Assert.Equal(data, item.Data);
    }

    [Theory]
    [InlineData("a\nb", null)]
    [InlineData("a\rb", null)]
    [InlineData("a\0b", null)]
    [InlineData("1", "tok\nen")]
    [InlineData("1", "tok\ren")]
    public async Task WriteEventAsync_FieldThatCannotBeOneLine_Throws(string id, string? eventName)
    {
        var stream = new MemoryStream();

        await Assert.ThrowsAsync<ArgumentException>(() => ServerSentEvents.WriteEventAsync(stream, id, eventName, "x", default));
        Assert.Equal(0, stream.Length);
    }

    [Fact]
    public async Task Start_ThenWrite_MakesAnEventStreamResponse()
    {
        var context = new DefaultHttpContext();
        var body = new MemoryStream();
        context.Response.Body = body;

        ServerSentEvents.Start(context.Response);
        await ServerSentEvents.WriteEventAsync(context.Response, "7", null, "x", default);
        await ServerSentEvents.WriteCommentAsync(context.Response, "", default);

        Assert.Equal(200, context.Response.StatusCode);
        Assert.Equal("text/event-stream", context.Response.ContentType);
        Assert.Equal("no-cache", context.Response.Headers.CacheControl.ToString());
        Assert.Equal("id: 7\ndata: x\n\n: \n", Encoding.UTF8.GetString(body.ToArray()));
    }

    [Theory]
    [InlineData(null, true, -1)]
    [InlineData("", true, -1)]
    [InlineData("  ", true, -1)]
    [InlineData("0", true, 0)]
    [InlineData("42", true, 42)]
    [InlineData(" 42 ", true, 42)]
    [InlineData("-1", false, -1)]
    [InlineData("+3", false, -1)]
    [InlineData("1.5", false, -1)]
    [InlineData("abc", false, -1)]
    [InlineData("99999999999999999999", false, -1)]
    public void TryParseLastEventId_Value_GivesTheSequenceToFollowAfter(string? value, bool ok, long expected)
    {
        Assert.Equal(ok, ServerSentEvents.TryParseLastEventId(value, out var after));
        Assert.Equal(expected, after);
    }

    [Fact]
    public async Task JobStreamEvent_AsSseData_RoundTripsThroughJson()
    {
        JobStreamEvent[] events = [JobStreamEvent.Token(0, 5, "a\nb"), JobStreamEvent.Final(1, FinishReason.Error, "boom")];
        var stream = new MemoryStream();
        foreach (var e in events)
        {
            await ServerSentEvents.WriteEventAsync(stream, e.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture), null,
                System.Text.Json.JsonSerializer.Serialize(e, JobStreamJson.Default.JobStreamEvent), default);
        }

        var items = await ParseAsync(stream.ToArray());

        Assert.Equal("{\"seq\":0,\"token\":5,\"text\":\"a\\nb\"}", items[0].Data);
        Assert.Equal("{\"seq\":1,\"text\":\"\",\"finish\":\"error\",\"error\":\"boom\"}", items[1].Data);
        Assert.Equal(events, items.Select(i => System.Text.Json.JsonSerializer.Deserialize(i.Data, JobStreamJson.Default.JobStreamEvent)));
    }
}
