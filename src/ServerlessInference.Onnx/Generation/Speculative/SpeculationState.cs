namespace ServerlessInference.Onnx.Generation.Speculative;

/// <summary>One sequence's speculation: how many tokens to propose next, and whether speculation still pays.</summary>
/// <remarks>
/// <para>The acceptance rate <c>a</c> is an exponential moving average (weight 0.25 on the newest round) of accepted ÷
/// proposed per verification. If each proposed token is accepted with probability <c>a</c>, the expected run of
/// accepted tokens is <c>a / (1 - a)</c>; k is that plus one (one guess past the expected run), between 1 and the
/// manifest's k. A round whose proposals were all accepted raises k by one at least, so a good proposer climbs back
/// fast.</para>
/// <para>Speculation turns itself off for the rest of the sequence when, after <see cref="MinRounds"/> verifications,
/// <c>a</c> is below <see cref="MinAcceptance"/>. Why it does not pay there: a verification at k = 1 yields 1 + a
/// tokens, while every rejection costs a copy of the sequence's KV cache (to drop the rejected columns), the wider
/// pass, and with a draft model the draft's own steps. Below 0.3 those costs eat the gain on this engine.</para>
/// </remarks>
internal sealed class SpeculationState(int maxK)
{
    private readonly int _maxK = maxK;

    public const int MinRounds = 8;

    public const double MinAcceptance = 0.3;

    private const double Weight = 0.25;

    /// <summary>Tokens to propose next.</summary>
    public int K { get; private set; } = maxK;

    public bool Enabled { get; private set; } = true;

    public int Rounds { get; private set; }

    /// <summary>Moving average of accepted ÷ proposed; NaN before the first round.</summary>
    public double Acceptance { get; private set; } = double.NaN;

    public void Record(int proposed, int accepted)
    {
        if (proposed <= 0)
        {
            return;
        }

        var rate = (double)accepted / proposed;
        Acceptance = double.IsNaN(Acceptance) ? rate : ((1 - Weight) * Acceptance) + (Weight * rate);
        Rounds++;
        var expectedRun = Acceptance >= 1 ? _maxK : Acceptance / (1 - Acceptance);
        var k = (int)Math.Clamp(Math.Ceiling(expectedRun) + 1, 1, _maxK);
        if (accepted == proposed)
        {
            k = Math.Max(k, Math.Min(proposed + 1, _maxK));
        }

        K = k;
        if (Rounds >= MinRounds && Acceptance < MinAcceptance)
        {
            Enabled = false;
        }
    }
}
