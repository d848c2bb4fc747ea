using System.Globalization;
using System.Text;
using ServerlessInference.Protocol;

namespace ServerlessInference.Tests.Protocol;

public sealed class DecimalFloatParserTests
{
    private static IEnumerable<string> Texts()
    {
        var random = new Random(20261126);
        for (var i = 0; i < 25_000; i++)
        {
            // Finite floats from all exponents, uniform pixel-like values, and their double neighbourhoods.
            var bits = random.Next(0x7F800000);
            var single = i % 3 == 0 ? (random.NextSingle() * 4) - 2 : BitConverter.Int32BitsToSingle(bits) * (i % 2 == 0 ? 1 : -1);
            yield return single.ToString("R", CultureInfo.InvariantCulture);
            yield return ((double)single).ToString("R", CultureInfo.InvariantCulture);
            yield return ((double)single).ToString("E16", CultureInfo.InvariantCulture);
            yield return random.NextDouble().ToString("F" + random.Next(1, 25), CultureInfo.InvariantCulture);

            // Midpoints between adjacent floats and values a hair either side of them.
            var next = MathF.BitIncrement(Math.Abs(single));
            var midpoint = ((double)Math.Abs(single) + next) / 2;
            yield return midpoint.ToString("R", CultureInfo.InvariantCulture);
            yield return Math.BitIncrement(midpoint).ToString("R", CultureInfo.InvariantCulture);
            yield return Math.BitDecrement(midpoint).ToString("R", CultureInfo.InvariantCulture);
            yield return ((decimal)(random.NextDouble() * 1000)).ToString(CultureInfo.InvariantCulture);
        }

        yield return "0";
        yield return "-0";
        yield return "0.0000000000000000000000000001";
        yield return "1e-45";
        yield return "1.00000017881393432617187499";
        yield return "1.00000017881393432617187501";
        yield return "1.000000178813934326171875";
        yield return "16777217";
        yield return "340282356779733661637539395458142568447";
        yield return "3.4028235e38";
        yield return "1234567890123456789012345678901234567890e-30";
        yield return "0.1e1";
        yield return "9007199254740993";
        yield return "123456789012345678";
    }

    [Fact]
    public void TryParseSingle_ManyTexts_AgreesWithRuntimeParserWheneverItAnswers()
    {
        var answered = 0;
        var total = 0;
        foreach (var text in Texts())
        {
            total++;
            var expected = float.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
            if (DecimalFloatParser.TryParseSingle(Encoding.ASCII.GetBytes(text), out var value))
            {
                answered++;
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(value), $"'{text}': expected {expected:R}, got {value:R}");
            }
        }

        Assert.True(answered > total / 3, $"answered {answered} of {total}");
    }

    [Fact]
    public void TryParseSingle_TypicalTensorValues_AreAlmostAllAnsweredExactly()
    {
        // What clients send: normalised pixels or activations, as shortest text or as Python's repr of a float32.
        var random = new Random(7);
        var answered = 0;
        const int count = 20_000;
        for (var i = 0; i < count; i++)
        {
            var single = ((random.NextSingle() * 2) - 1) * MathF.Pow(10, random.Next(-6, 6));
            var text = i % 2 == 0 ? single.ToString("R", CultureInfo.InvariantCulture) : ((double)single).ToString("R", CultureInfo.InvariantCulture);
            if (DecimalFloatParser.TryParseSingle(Encoding.ASCII.GetBytes(text), out var value))
            {
                answered++;
                Assert.Equal(single, value);
            }
        }

        Assert.True(answered > count * 99 / 100, $"answered {answered} of {count}");
    }

    [Fact]
    public void TryParseDouble_ManyTexts_AgreesWithRuntimeParserWheneverItAnswers()
    {
        foreach (var text in Texts())
        {
            var expected = double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
            if (DecimalFloatParser.TryParseDouble(Encoding.ASCII.GetBytes(text), out var value))
            {
                Assert.True(BitConverter.DoubleToInt64Bits(expected) == BitConverter.DoubleToInt64Bits(value), $"'{text}': expected {expected:R}, got {value:R}");
            }
        }
    }

    [Theory]
    [InlineData("-")]
    [InlineData("1e")]
    [InlineData("1x")]
    [InlineData("")]
    public void TryParseSingle_MalformedText_Declines(string text)
    {
        Assert.False(DecimalFloatParser.TryParseSingle(Encoding.ASCII.GetBytes(text), out _));
    }
}
