using ServerlessInference.Jobs;

namespace ServerlessInference.Tests.Jobs;

public sealed class JobPreferenceTests
{
    private static readonly JobPreference Preference = new()
    {
        AffinityWait = TimeSpan.FromMilliseconds(250),
        LoadWait = TimeSpan.FromMilliseconds(500),
        WarmElsewhere = new HashSet<string>(["m", "n#p"], StringComparer.Ordinal),
    };

    [Theory]
    // A prompt prefix of a model warm here and nowhere else: no load, no one to wait for.
    [InlineData(false, true, 0)]
    // A prefix of a model warm here that another worker holds: wait for that worker only.
    [InlineData(true, true, 250)]
    // Cold (warm nowhere): taking it loads the model into a full pool.
    [InlineData(false, false, 500)]
    // Warm elsewhere and not here: the longer of the two waits.
    [InlineData(true, false, 500)]
    public void WaitFor_IsTheAffinityWaitAndTheLoadWaitWhereEachApplies(bool warmElsewhere, bool modelWarmHere, int milliseconds)
    {
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), Preference.WaitFor(warmElsewhere, modelWarmHere));
    }

    [Fact]
    public void WaitFor_LoadWaitShorterThanTheAffinityWait_KeepsTheAffinityWait()
    {
        var preference = Preference with { LoadWait = TimeSpan.FromMilliseconds(100) };

        Assert.Equal(TimeSpan.FromMilliseconds(250), preference.WaitFor(warmElsewhere: true, modelWarmHere: false));
        Assert.Equal(TimeSpan.FromMilliseconds(100), preference.WaitFor(warmElsewhere: false, modelWarmHere: false));
    }

    [Theory]
    [InlineData("m", true)]
    [InlineData("m#q", true)] // the model is warm elsewhere, if not this prefix
    [InlineData("n#p", true)]
    [InlineData("n", false)]
    [InlineData("n#q", false)]
    [InlineData("x", false)]
    public void IsWarmElsewhere_MatchesTheKeyOrItsModel(string key, bool expected)
    {
        Assert.Equal(expected, Preference.IsWarmElsewhere(key));
    }
}
