using ServerlessInference.Gateway;

namespace ServerlessInference.Tests.Gateway;

public sealed class PreferHeaderTests
{
    private static readonly GatewayOptions s_options = new() { DefaultWait = TimeSpan.FromSeconds(60), MaxWait = TimeSpan.FromSeconds(300) };

    [Theory]
    [InlineData("wait=10", 10)]
    [InlineData("wait=0", 0)]
    [InlineData("wait=2.5", 2.5)]
    [InlineData("wait=\"7\"", 7)]
    [InlineData("WAIT = 4", 4)]
    [InlineData("respond-async, wait=3", 3)]
    public void Parse_WellFormedWait_IsUsed(string header, double seconds)
    {
        var prefer = PreferHeader.Parse([header]);

        Assert.Equal(TimeSpan.FromSeconds(seconds), prefer.EffectiveWait(s_options));
    }

    [Theory]
    [InlineData("wait=1e400")]
    [InlineData("wait=99999999999999999999")]
    [InlineData("wait=922337203685")]
    [InlineData("wait=1e12")]
    [InlineData("wait=301")]
    public void Parse_HugeWait_IsCappedToMaxWait(string header)
    {
        var prefer = PreferHeader.Parse([header]);

        Assert.Equal(s_options.MaxWait, prefer.EffectiveWait(s_options));
    }

    [Theory]
    [InlineData("wait=NaN")]
    [InlineData("wait=nan")]
    [InlineData("wait=Infinity")]
    [InlineData("wait=-Infinity")]
    [InlineData("wait=-1")]
    [InlineData("wait=+5")]
    [InlineData("wait=")]
    [InlineData("wait")]
    [InlineData("wait=\"\"")]
    [InlineData("wait=soon")]
    [InlineData("wait=0x10")]
    [InlineData("wait=10s")]
    [InlineData("wait=1 000")]
    public void Parse_MalformedWait_ThrowsBadRequestNamingTheValue(string header)
    {
        var ex = Assert.Throws<InferenceException>(() => PreferHeader.Parse([header]));

        Assert.Equal(InferenceError.BadRequest, ex.Error);
        Assert.StartsWith("Prefer: wait must be a non-negative number of seconds", ex.Message);
    }

    [Fact]
    public void Parse_LongGarbage_IsShortenedInTheMessage()
    {
        var ex = Assert.Throws<InferenceException>(() => PreferHeader.Parse(["wait=" + new string('x', 10_000)]));

        Assert.True(ex.Message.Length < 200, ex.Message);
    }

    [Theory]
    [InlineData(new[] { "wait=5, wait=9" }, 5)]
    [InlineData(new[] { "wait=5", "wait=9" }, 5)]
    [InlineData(new[] { "wait=5", "wait=NaN" }, 5)]
    [InlineData(new[] { "wait=5; wait=-1" }, 5)]
    public void Parse_RepeatedWait_OnlyTheFirstCounts(string[] headers, double seconds)
    {
        var prefer = PreferHeader.Parse(headers);

        Assert.Equal(TimeSpan.FromSeconds(seconds), prefer.Wait);
    }

    [Fact]
    public void Parse_RepeatedWaitFirstMalformed_ThrowsBadRequest()
    {
        Assert.Throws<InferenceException>(() => PreferHeader.Parse(["wait=NaN, wait=5"]));
    }

    [Theory]
    [InlineData("respond-async", true, 0)]
    [InlineData("handling=lenient", false, 60)]
    [InlineData("", false, 60)]
    public void Parse_OtherPreferences_KeepTheirMeaning(string header, bool respondAsync, double seconds)
    {
        var prefer = PreferHeader.Parse([header]);

        Assert.Equal(respondAsync, prefer.RespondAsync);
        Assert.Equal(TimeSpan.FromSeconds(seconds), prefer.EffectiveWait(s_options));
    }

    [Fact]
    public void Parse_WaitNameOnlyAsPrefix_IsAnotherPreference()
    {
        var prefer = PreferHeader.Parse(["waiting=forever"]);

        Assert.Null(prefer.Wait);
    }
}
