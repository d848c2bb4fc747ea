using System.Text;
using ServerlessInference.Cli.Bench;
using ServerlessInference.Cli.Generation;

namespace ServerlessInference.Cli.Tests;

public sealed class ParsingTests
{
    [Fact]
    public void LatencySummary_OneToHundred_NearestRankPercentiles()
    {
        var summary = LatencySummary.From([.. Enumerable.Range(1, 100).Select(i => (double)(101 - i))]);

        Assert.Equal(100, summary.Count);
        Assert.Equal(50, summary.P50);
        Assert.Equal(90, summary.P90);
        Assert.Equal(99, summary.P99);
        Assert.Equal(100, summary.Max);
        Assert.Equal(50.5, summary.Mean);
    }

    [Fact]
    public void LatencySummary_FewSamples_PercentilesAreMeasuredValues()
    {
        var summary = LatencySummary.From([3.0, 1.0, 2.0]);

        Assert.Equal(2.0, summary.P50);
        Assert.Equal(3.0, summary.P90);
        Assert.Equal(3.0, summary.P99);
        Assert.Equal(0, LatencySummary.From([]).Count);
    }

    [Fact]
    public async Task SseReader_EventsCommentsMultilineDataAndCrLf()
    {
        var text = ": keep-alive\r\n\r\nid: 1\r\nevent: token\r\ndata: {\"a\":1}\r\n\r\ndata: line one\ndata:line two\n\nevent: empty\n\ndata: [DONE]\n\n";
        var events = new List<SseEvent>();

        await foreach (var e in SseReader.ReadAsync(new MemoryStream(Encoding.UTF8.GetBytes(text)), default))
        {
            events.Add(e);
        }

        Assert.Equal(
            [new SseEvent("token", "{\"a\":1}", "1"), new SseEvent("message", "line one\nline two", "1"), new SseEvent("message", "[DONE]", "1")],
            events);
    }

    [Theory]
    [InlineData("{\"error\":\"unknown model 'x'\"}", "unknown model 'x'")]
    [InlineData("{\"error\":{\"message\":\"The model does not exist\",\"type\":\"invalid_request_error\"}}", "The model does not exist")]
    [InlineData("<html>\nbad gateway\n</html>", "<html> bad gateway </html>")]
    [InlineData("", "(no body)")]
    public void ErrorText_OipOpenAiOrOther_OneLine(string body, string expected)
    {
        Assert.Equal(expected, GatewayClient.ErrorText(body));
    }
}
