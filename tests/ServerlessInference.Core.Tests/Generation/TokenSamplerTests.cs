using ServerlessInference.Generation;

namespace ServerlessInference.Tests.Generation;

public sealed class TokenSamplerTests
{
    private static float[] Logits() => [0.5f, 2.0f, -1.0f, 1.9f, 0.0f, 1.0f];

    [Fact]
    public void Sample_Greedy_TakesTheArgMax()
    {
        Assert.Equal(1, TokenSampler.Sample(Logits(), SamplingParameters.Greedy, [], 1, 0));
    }

    [Fact]
    public void ArgMax_Tie_TakesTheLowestId()
    {
        Assert.Equal(1, TokenSampler.ArgMax([0f, 3f, 3f]));
    }

    [Fact]
    public void Sample_SameSeedAndPosition_SameToken()
    {
        var sampling = new SamplingParameters { Temperature = 1.5f, Seed = 9 };
        for (var position = 0; position < 50; position++)
        {
            Assert.Equal(TokenSampler.Sample(Logits(), sampling, [], 9, position), TokenSampler.Sample(Logits(), sampling, [], 9, position));
        }
    }

    [Fact]
    public void Sample_HighTemperature_ReachesEveryTokenAcrossPositions()
    {
        var sampling = new SamplingParameters { Temperature = 5f };
        var seen = Enumerable.Range(0, 400).Select(p => TokenSampler.Sample(Logits(), sampling, [], 11, p)).ToHashSet();

        Assert.Equal(6, seen.Count);
    }

    [Fact]
    public void Sample_TopK2_OnlyTheTwoMostLikely()
    {
        var sampling = new SamplingParameters { Temperature = 5f, TopK = 2 };
        var seen = Enumerable.Range(0, 200).Select(p => TokenSampler.Sample(Logits(), sampling, [], 3, p)).ToHashSet();

        Assert.Equal([1, 3], seen.Order());
    }

    [Fact]
    public void Sample_SmallTopP_OnlyTheMostLikely()
    {
        var sampling = new SamplingParameters { Temperature = 1f, TopP = 0.01f };

        Assert.All(Enumerable.Range(0, 100), p => Assert.Equal(1, TokenSampler.Sample(Logits(), sampling, [], 5, p)));
    }

    [Fact]
    public void Sample_TopP_KeepsTheSmallestSetReachingP()
    {
        // Probabilities at temperature 1: 1 and 3 hold about 0.62 together; p = 0.6 keeps exactly them.
        var sampling = new SamplingParameters { Temperature = 1f, TopP = 0.6f };
        var seen = Enumerable.Range(0, 300).Select(p => TokenSampler.Sample(Logits(), sampling, [], 8, p)).ToHashSet();

        Assert.Equal([1, 3], seen.Order());
    }

    [Fact]
    public void Sample_RepetitionPenalty_MovesAwayFromSeenTokens()
    {
        var sampling = new SamplingParameters { RepetitionPenalty = 1.2f };

        Assert.Equal(3, TokenSampler.Sample(Logits(), sampling, [1, 1, 4], 0, 0));
    }

    [Fact]
    public void Sample_Frequencies_FollowTheSoftmax()
    {
        var sampling = new SamplingParameters { Temperature = 1f };
        var counts = new int[6];
        for (var p = 0; p < 20_000; p++)
        {
            counts[TokenSampler.Sample(Logits(), sampling, [], 17, p)]++;
        }

        var logits = Logits();
        var sum = logits.Sum(l => Math.Exp(l));
        for (var i = 0; i < 6; i++)
        {
            Assert.InRange(counts[i] / 20_000.0, (Math.Exp(logits[i]) / sum) - 0.02, (Math.Exp(logits[i]) / sum) + 0.02);
        }
    }

    [Fact]
    public void Uniform_DependsOnlyOnSeedAndPosition()
    {
        Assert.Equal(TokenSampler.Uniform(1, 2), TokenSampler.Uniform(1, 2));
        Assert.NotEqual(TokenSampler.Uniform(1, 2), TokenSampler.Uniform(1, 3));
        Assert.NotEqual(TokenSampler.Uniform(1, 2), TokenSampler.Uniform(2, 2));
        Assert.All(Enumerable.Range(0, 1000), p => Assert.InRange(TokenSampler.Uniform(42, p), 0.0, 0.9999999999));
    }

    [Theory]
    [InlineData(-1f, 0, 1f, 1f, "temperature")]
    [InlineData(1f, -1, 1f, 1f, "top_k")]
    [InlineData(1f, 0, 0f, 1f, "top_p")]
    [InlineData(1f, 0, 1.5f, 1f, "top_p")]
    [InlineData(1f, 0, 1f, 0f, "repetition_penalty")]
    public void Validate_BadValue_NamesIt(float temperature, int topK, float topP, float penalty, string field)
    {
        var sampling = new SamplingParameters { Temperature = temperature, TopK = topK, TopP = topP, RepetitionPenalty = penalty };

        Assert.StartsWith(field, sampling.Validate());
    }
}
