using ServerlessInference.Generation;

namespace ServerlessInference.IntegrationTests;

/// <summary>The near-tie rule <see cref="GenerationKillTests"/> relies on: it must accept a floating-point tie and
/// nothing wider, for greedy decoding and for seeded sampling (no model, no platform).</summary>
[Trait("Category", "Integration")]
public sealed class DirectDecoderTests
{
    private const float Epsilon = 1e-3f;

    [Theory]
    [InlineData(0.0004f, true)]
    [InlineData(0.0009f, true)]
    [InlineData(0.0011f, false)]
    [InlineData(0.5f, false)]
    public void IsNearTie_Greedy_OnlyTopTwoWithinEpsilon(float gap, bool expected)
    {
        float[] logits = [0.25f, 3f, 3f - gap, -1f];

        Assert.Equal(expected, DirectDecoder.IsNearTie(logits, SamplingParameters.Greedy, [7, 8], 0, 1, 2, Epsilon));
        Assert.Equal(expected, DirectDecoder.IsNearTie(logits, SamplingParameters.Greedy, [7, 8], 0, 2, 1, Epsilon));
    }

    [Fact]
    public void IsNearTie_GreedyTokensNotTheTopTwo_False()
    {
        float[] logits = [3f, 2f, 2f, -1f];

        Assert.False(DirectDecoder.IsNearTie(logits, SamplingParameters.Greedy, [7], 0, 1, 2, Epsilon));
    }

    [Theory]
    [InlineData(1e-5, true)]
    [InlineData(-1e-5, true)]
    [InlineData(1e-2, false)]
    [InlineData(-1e-2, false)]
    public void IsNearTie_Sampling_OnlyADrawAtTheBoundary(double offset, bool expected)
    {
        // Two tokens, the first the more likely, whose boundary in the cumulative distribution lies `offset` (in
        // probability) from the draw: a seed whose draw is above one half puts it there.
        int[] context = [5, 6, 7];
        var seed = Enumerable.Range(1, 1000).Select(s => (ulong)s).First(s => TokenSampler.Uniform(s, context.Length) is > 0.55 and < 0.9);
        var sampling = new SamplingParameters { Temperature = 0.8f, Seed = seed };
        var first = TokenSampler.Uniform(seed, context.Length) + offset;
        float[] logits = [(float)(sampling.Temperature * Math.Log(first / (1 - first))), 0f];

        Assert.Equal(expected, DirectDecoder.IsNearTie(logits, sampling, context, seed, 0, 1, Epsilon));
    }
}
