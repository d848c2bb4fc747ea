using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.Functions.Tests.Gateway;

/// <summary>The generation routes through the Functions app's function classes (ASP.NET Core integration writes the
/// response, Server-Sent Events included), with real generation on <c>tiny-lm</c> by in-process workers.</summary>
[Collection(FunctionsCollection.Name)]
public sealed class GenerationFunctionsTests(FunctionsFixture fixture)
{
    private IGatewayDriver Gateway => fixture.Serving.Gateway;

    private static GatewayRequest Post(string path, string json, params (string, string)[] headers) =>
        GatewayRequest.Post(path, new GatewayContent(Encoding.UTF8.GetBytes(json), "application/json"), headers);

    [Fact]
    public async Task Generate_AndGenerateStream_GiveTheSameText()
    {
        const string request = """{"text_input":"the cat","parameters":{"max_tokens":6,"temperature":0}}""";

        var whole = await Gateway.SendAsync(Post("/v2/models/tiny-lm/generate", request));
        var streamed = await Gateway.SendAsync(Post("/v2/models/tiny-lm/generate_stream", request));

        Assert.Equal(200, whole.Status);
        using var json = JsonDocument.Parse(whole.Body);
        Assert.Equal(200, streamed.Status);
        Assert.StartsWith("text/event-stream", streamed.Header("Content-Type"));
        var pieces = new StringBuilder();
        await foreach (var item in SseParser.Create(new MemoryStream(streamed.Body)).EnumerateAsync())
        {
            using var e = JsonDocument.Parse(item.Data);
            pieces.Append(e.RootElement.GetProperty("text_output").GetString());
        }

        Assert.Equal(json.RootElement.GetProperty("text_output").GetString(), pieces.ToString());
    }

    [Fact]
    public async Task ChatCompletions_Streamed_EndsWithDone()
    {
        var response = await Gateway.SendAsync(Post("/v1/chat/completions",
            """{"model":"tiny-lm","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"""));

        Assert.Equal(200, response.Status);
        var data = new List<string>();
        await foreach (var item in SseParser.Create(new MemoryStream(response.Body)).EnumerateAsync())
        {
            data.Add(item.Data);
        }

        Assert.Equal("[DONE]", data[^1]);
        using var usage = JsonDocument.Parse(data[^2]);
        Assert.True(usage.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32() >= 1);
        using var first = JsonDocument.Parse(data[0]);
        Assert.Equal("chat.completion.chunk", first.RootElement.GetProperty("object").GetString());
        Assert.Equal("assistant", first.RootElement.GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
    }

    [Fact]
    public async Task Completions_NotAGenerationModel_Is400InOpenAisShape()
    {
        var response = await Gateway.SendAsync(Post("/v1/completions", """{"model":"mlp-bench","prompt":"x"}"""));

        Assert.Equal(400, response.Status);
        using var json = JsonDocument.Parse(response.Body);
        Assert.Equal("invalid_request_error", json.RootElement.GetProperty("error").GetProperty("type").GetString());
    }
}
