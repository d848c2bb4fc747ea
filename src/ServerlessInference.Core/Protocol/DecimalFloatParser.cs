namespace ServerlessInference.Protocol;

/// <summary>Fast, exact conversion of JSON number text to <see cref="float"/> and <see cref="double"/> for the common
/// cases; callers fall back to the runtime's parser when this declines.</summary>
/// <remarks>
/// <para>FP32: the decimal (at most 19 significant digits kept) is turned into a double with at most four roundings,
/// a relative error below 2^-51. Rounding that double to float gives the correctly rounded result unless it lies within
/// the error bound of a midpoint between two floats, which is checked (margin 2^-49); then this declines. This covers
/// both shortest round-trip text ("0.1") and Python's 17-digit reprs of float32 values.</para>
/// <para>FP64: Clinger's fast path, exact when the mantissa fits in 53 bits and the power of ten is at most 22.</para>
/// <para>The runtime parser costs about 100 ns a value here, which is most of the time of parsing a large FP32 tensor.</para>
/// </remarks>
internal static class DecimalFloatParser
{
    private const double MidpointMargin = 1.0 / 562949953421312.0; // 2^-49

    private static readonly double[] s_powersOf10 =
    [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];

    public static bool TryParseSingle(ReadOnlySpan<byte> text, out float value)
    {
        value = 0;
        if (!TryDecompose(text, out var negative, out var mantissa, out var exponent, out _))
        {
            return false;
        }

        if (mantissa == 0)
        {
            value = negative ? -0f : 0f;
            return true;
        }

        if (exponent is < -44 or > 44)
        {
            return false;
        }

        // Powers of ten up to 1e22 are exact doubles; a larger one is applied in two steps (one more rounding).
        double approximation = mantissa;
        if (exponent < 0)
        {
            if (exponent < -22)
            {
                approximation /= 1e22;
                exponent += 22;
            }

            approximation /= s_powersOf10[-exponent];
        }
        else
        {
            if (exponent > 22)
            {
                approximation *= 1e22;
                exponent -= 22;
            }

            approximation *= s_powersOf10[exponent];
        }

        if (approximation > 3.0e38 || approximation < 1e-44)
        {
            // Near overflow or deep in the subnormals: leave the edge cases to the runtime.
            return false;
        }

        var rounded = (float)approximation;
        if (rounded != approximation)
        {
            var neighbour = approximation > rounded ? MathF.BitIncrement(rounded) : MathF.BitDecrement(rounded);
            var midpoint = ((double)rounded + neighbour) * 0.5;
            if (Math.Abs(approximation - midpoint) <= approximation * MidpointMargin)
            {
                return false;
            }
        }

        value = negative ? -rounded : rounded;
        return true;
    }

    public static bool TryParseDouble(ReadOnlySpan<byte> text, out double value)
    {
        value = 0;
        if (!TryDecompose(text, out var negative, out var mantissa, out var exponent, out var truncated)
            || truncated || mantissa > (1UL << 53) || exponent is < -22 or > 22)
        {
            return false;
        }

        var magnitude = exponent < 0 ? mantissa / s_powersOf10[-exponent] : mantissa * s_powersOf10[exponent];
        value = negative ? -magnitude : magnitude;
        return true;
    }

    /// <summary>Splits JSON number text (already validated by the reader) into sign, up to 19 significant digits and a
    /// power of ten; <paramref name="truncated"/> says whether non-zero digits beyond the 19th were dropped.</summary>
    private static bool TryDecompose(ReadOnlySpan<byte> text, out bool negative, out ulong mantissa, out int exponent, out bool truncated)
    {
        negative = false;
        mantissa = 0;
        exponent = 0;
        truncated = false;
        var i = 0;
        if (text.Length > 0 && text[0] == '-')
        {
            negative = true;
            i = 1;
        }

        var digits = 0;
        for (; i < text.Length; i++)
        {
            var digit = (uint)(text[i] - '0');
            if (digit > 9)
            {
                break;
            }

            if (digits < 19)
            {
                mantissa = (mantissa * 10) + digit;
                if (mantissa != 0)
                {
                    digits++;
                }
            }
            else
            {
                exponent++;
                truncated |= digit != 0;
            }
        }

        if (i < text.Length && text[i] == '.')
        {
            for (i++; i < text.Length; i++)
            {
                var digit = (uint)(text[i] - '0');
                if (digit > 9)
                {
                    break;
                }

                if (digits < 19)
                {
                    mantissa = (mantissa * 10) + digit;
                    if (mantissa != 0)
                    {
                        digits++;
                    }

                    exponent--;
                }
                else
                {
                    truncated |= digit != 0;
                }
            }
        }

        if (i < text.Length && (text[i] | 0x20) == 'e')
        {
            i++;
            var negativeExponent = false;
            if (i < text.Length && (text[i] == '-' || text[i] == '+'))
            {
                negativeExponent = text[i] == '-';
                i++;
            }

            var start = i;
            var power = 0;
            for (; i < text.Length; i++)
            {
                var digit = (uint)(text[i] - '0');
                if (digit > 9)
                {
                    break;
                }

                if (power < 100_000)
                {
                    power = (power * 10) + (int)digit;
                }
            }

            if (i == start)
            {
                return false;
            }

            exponent += negativeExponent ? -power : power;
        }

        return i == text.Length && text.Length > (negative ? 1 : 0);
    }
}
