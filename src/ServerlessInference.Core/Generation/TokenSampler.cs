namespace ServerlessInference.Generation;

/// <summary>Chooses the next token from logits (see <see cref="SamplingParameters"/> for the order of the steps).</summary>
/// <remarks>Stateless and thread-safe. The only randomness is <see cref="Uniform"/>(seed, position), a counter-based
/// draw, so the token at a position depends only on the logits, the context and (seed, position).</remarks>
public static class TokenSampler
{
    /// <summary>The next token. <paramref name="logits"/> is used as scratch and left changed.</summary>
    /// <param name="logits">One row of logits, length = vocabulary size.</param>
    /// <param name="context">Tokens already in the sequence (prompt and output), for the repetition penalty.</param>
    /// <param name="seed">The request's seed.</param>
    /// <param name="position">The absolute position of the token being chosen.</param>
    public static int Sample(Span<float> logits, SamplingParameters parameters, ReadOnlySpan<int> context, ulong seed, int position)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (parameters.RepetitionPenalty != 1f)
        {
            ApplyRepetitionPenalty(logits, context, parameters.RepetitionPenalty);
        }

        if (parameters.Temperature == 0f || parameters.TopK == 1)
        {
            return ArgMax(logits);
        }

        var order = new int[logits.Length];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        // Most likely first; equal logits by id, so the order never depends on the sort's stability.
        var values = logits.ToArray();
        Array.Sort(order, (a, b) => values[a] != values[b] ? values[b].CompareTo(values[a]) : a.CompareTo(b));
        var kept = parameters.TopK > 0 ? Math.Min(parameters.TopK, order.Length) : order.Length;

        var probabilities = new double[kept];
        var max = (double)values[order[0]];
        var sum = 0.0;
        for (var i = 0; i < kept; i++)
        {
            probabilities[i] = Math.Exp((values[order[i]] - max) / parameters.Temperature);
            sum += probabilities[i];
        }

        if (parameters.TopP < 1f)
        {
            var cumulative = 0.0;
            for (var i = 0; i < kept; i++)
            {
                cumulative += probabilities[i] / sum;
                if (cumulative >= parameters.TopP)
                {
                    kept = i + 1;
                    break;
                }
            }

            sum = 0;
            for (var i = 0; i < kept; i++)
            {
                sum += probabilities[i];
            }
        }

        var target = Uniform(seed, position) * sum;
        var running = 0.0;
        for (var i = 0; i < kept; i++)
        {
            running += probabilities[i];
            if (target < running)
            {
                return order[i];
            }
        }

        return order[kept - 1];
    }

    /// <summary>The arg max, lowest index on a tie.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        var best = 0;
        for (var i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>A uniform draw in [0, 1) that depends only on (<paramref name="seed"/>, <paramref name="position"/>):
    /// SplitMix64's finalizer over the seed mixed with the position (53 random bits).</summary>
    public static double Uniform(ulong seed, int position)
    {
        var z = Mix(seed + 0x9E3779B97F4A7C15UL) ^ ((ulong)(uint)position * 0xD1B54A32D192ED03UL);
        z = Mix(z + 0x9E3779B97F4A7C15UL);
        return (z >> 11) * (1.0 / (1UL << 53));
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static void ApplyRepetitionPenalty(Span<float> logits, ReadOnlySpan<int> context, float penalty)
    {
        var seen = new HashSet<int>();
        foreach (var token in context)
        {
            if ((uint)token < (uint)logits.Length && seen.Add(token))
            {
                var logit = logits[token];
                logits[token] = logit > 0 ? logit / penalty : logit * penalty;
            }
        }
    }
}
