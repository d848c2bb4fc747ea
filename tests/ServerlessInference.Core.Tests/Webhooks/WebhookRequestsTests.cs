using Microsoft.Extensions.Primitives;
using ServerlessInference.Webhooks;

namespace ServerlessInference.Tests.Webhooks;

public sealed class WebhookRequestsTests
{
    private static readonly WebhookOptions s_enabled = new() { Secret = WebhookDispatcherTests.Secret };

    private static InferenceRequest Request(object? webhook) => new()
    {
        Inputs = [],
        Parameters = webhook is null ? null : new Dictionary<string, object> { ["webhook"] = webhook, ["other"] = 1L },
    };

    [Fact]
    public void Take_Parameter_ReturnsItAndRemovesItFromTheRequest()
    {
        var request = Request("https://example.com/hook?t=1");

        Assert.Equal("https://example.com/hook?t=1", WebhookRequests.Take(request, default, s_enabled));
        Assert.Equal(["other"], request.Parameters!.Keys);
    }

    [Fact]
    public void Take_HeaderOnly_ReturnsIt() =>
        Assert.Equal("http://example.com/h", WebhookRequests.Take(Request(null), new StringValues("http://example.com/h"), s_enabled));

    [Fact]
    public void Take_None_IsNull() => Assert.Null(WebhookRequests.Take(Request(null), default, new WebhookOptions()));

    [Theory]
    [InlineData("not a url", "absolute http or https URL")]
    [InlineData("/relative/hook", "absolute http or https URL")]
    [InlineData("ftp://example.com/x", "absolute http or https URL")]
    [InlineData("file:///etc/passwd", "absolute http or https URL")]
    [InlineData("https://user:pw@example.com/", "must not carry credentials")]
    public void Take_BadUrl_IsABadRequest(string url, string message)
    {
        var ex = Assert.Throws<InferenceException>(() => WebhookRequests.Take(Request(url), default, s_enabled));

        Assert.Equal(InferenceError.BadRequest, ex.Error);
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Take_TooLong_IsABadRequest()
    {
        var url = "https://example.com/" + new string('a', 2100);

        var ex = Assert.Throws<InferenceException>(() => WebhookRequests.Take(Request(url), default, s_enabled));

        Assert.Equal($"the webhook URL is {url.Length} characters; at most 2048", ex.Message);
    }

    [Fact]
    public void Take_NotAString_IsABadRequest() =>
        Assert.Equal("parameters.webhook must be a string (an http or https URL)",
            Assert.Throws<InferenceException>(() => WebhookRequests.Take(Request(5L), default, s_enabled)).Message);

    [Fact]
    public void Take_HeaderAndParameterDisagree_IsABadRequest() =>
        Assert.Contains("different URLs", Assert.Throws<InferenceException>(
            () => WebhookRequests.Take(Request("https://a.example/"), new StringValues("https://b.example/"), s_enabled)).Message, StringComparison.Ordinal);

    [Fact]
    public void Take_WebhooksNotConfigured_IsABadRequestNamingTheSetting() =>
        Assert.Equal("this server does not send webhooks (Inference:Webhooks:Secret is not set)",
            Assert.Throws<InferenceException>(() => WebhookRequests.Take(Request("https://a.example/"), default, new WebhookOptions())).Message);

    [Theory]
    [InlineData("whsec_c2hvcnQ=")] // 5 bytes
    [InlineData("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")] // no prefix
    [InlineData("whsec_!!notbase64!!")]
    public void Validate_BadSecret_FailsNamingTheSetting(string secret)
    {
        var result = new WebhookOptionsValidator().Validate(null, new WebhookOptions { Secret = secret });

        Assert.True(result.Failed);
        Assert.Contains("Inference:Webhooks:Secret must be 'whsec_'", result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_BadNetwork_FailsNamingIt()
    {
        var result = new WebhookOptionsValidator().Validate(null, new WebhookOptions { AllowedNetworks = ["10.0.0.0/33"] });

        Assert.True(result.Failed);
        Assert.Contains("'10.0.0.0/33'", result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 2048, "Inference:Webhooks:MaxAttempts must be between 1 and 50")]
    [InlineData(51, 2048, "Inference:Webhooks:MaxAttempts must be between 1 and 50")]
    [InlineData(6, 8, "Inference:Webhooks:MaxUrlLength must be between 16 and 8192")]
    public void Validate_OutOfRange_FailsNamingTheSetting(int maxAttempts, int maxUrlLength, string message)
    {
        var result = new WebhookOptionsValidator().Validate(null, new WebhookOptions { MaxAttempts = maxAttempts, MaxUrlLength = maxUrlLength });

        Assert.True(result.Failed);
        Assert.Contains(message, result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_GoodSettings_Succeed() =>
        Assert.True(new WebhookOptionsValidator().Validate(null, new WebhookOptions { Secret = WebhookDispatcherTests.Secret, AllowedNetworks = ["127.0.0.0/8"] }).Succeeded);
}
