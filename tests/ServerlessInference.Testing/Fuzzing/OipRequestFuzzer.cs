using System.Globalization;
using System.Text;

namespace ServerlessInference.Testing.Fuzzing;

/// <summary>One mutated request: the body, its <c>Inference-Header-Content-Length</c> (null: plain JSON), and the
/// mutations that made it, to name a failure.</summary>
public sealed record FuzzInput(byte[] Body, int? HeaderLength, string Mutations)
{
    /// <summary>Enough of the input to reproduce a failure by hand.</summary>
    public string Describe()
    {
        var shown = Body.Length > 600 ? Body[..600] : Body;
        return $"[{Mutations}] header length {HeaderLength?.ToString(CultureInfo.InvariantCulture) ?? "none"}, {Body.Length} bytes: " +
            Encoding.UTF8.GetString(shown).Replace("\n", "\\n", StringComparison.Ordinal);
    }
}

/// <summary>Seeded mutations of valid OIP requests (JSON and Triton's binary extension): bit flips, truncation, splicing
/// of two requests, number blow-ups, deep nesting, huge claimed shapes and sizes, stray tokens, datatype swaps,
/// invalid UTF-8 and wrong header lengths. The same seed gives the same inputs.</summary>
/// <remarks>How many inputs and which seed: <see cref="Iterations"/> and <see cref="Seed"/> read <c>SI_FUZZ_ITERATIONS</c>
/// and <c>SI_FUZZ_SEED</c>, so a long run is <c>SI_FUZZ_ITERATIONS=1000000 SI_FUZZ_SEED=7 dotnet test ...</c>.
/// Not thread-safe.</remarks>
public sealed class OipRequestFuzzer
{
    public const string IterationsVariable = "SI_FUZZ_ITERATIONS";
    public const string SeedVariable = "SI_FUZZ_SEED";

    private static readonly string[] s_numberBlowups =
    [
        "1e400", "-1e400", "1e-400", "99999999999999999999999999", "-9223372036854775809", "9223372036854775808",
        "18446744073709551616", "4294967296", "2147483648", "-0", "0.0000000000000000000000000000000000000000001",
        "1" + new string('0', 5000), "0." + new string('9', 5000), "1E+999999999", "65505", "3.4028236e38", "NaN", "Infinity",
    ];

    private static readonly string[] s_hugeDims =
    [
        "1000000000", "9223372036854775807", "4611686018427387904", "2147483647", "2147483648", "4294967296", "-1",
        "1e9", "1.5", "\"3\"", "null", "0", "100000000,100000000", "3037000500,3037000500", "65536,65536,65536",
    ];

    private static readonly string[] s_fragments =
    [
        "{", "}", "[", "]", ",", ":", "\"", "null", "true", "-", "\\", "\"\\u0000\"", "\"\\ud800\"", "{}", "[]",
        "\"inputs\":[]", "\"data\":[1,2,3],", "\"shape\":[3],", "\"parameters\":{\"binary_data_size\":1000000000},",
        "\"parameters\":{\"binary_data_size\":-5},", "\"name\":null,", "\"datatype\":\"BYTES\",", "/*x*/", "\u00e9",
    ];

    private static readonly string[] s_datatypes =
        ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16", "fp32", ""];

    private readonly IReadOnlyList<(byte[] Body, int? HeaderLength)> _seeds;
    private readonly Random _random;

    public OipRequestFuzzer(IReadOnlyList<(byte[] Body, int? HeaderLength)> seeds, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfZero(seeds.Count);
        _seeds = seeds;
        _random = new Random(seed);
    }

    /// <summary><c>SI_FUZZ_ITERATIONS</c>, or <paramref name="fallback"/> (what <c>tests/run.sh</c> runs).</summary>
    public static int Iterations(int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(IterationsVariable), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : fallback;

    /// <summary><c>SI_FUZZ_SEED</c>, or a fixed seed, so a run is repeatable.</summary>
    public static int Seed =>
        int.TryParse(Environment.GetEnvironmentVariable(SeedVariable), NumberStyles.Integer, CultureInfo.InvariantCulture, out var s) ? s : 20261204;

    /// <summary>The next input: a seed request with one to three mutations.</summary>
    public FuzzInput Next()
    {
        var (body, headerLength) = _seeds[_random.Next(_seeds.Count)];
        var input = new FuzzInput(body, headerLength, "");
        var count = 1 + _random.Next(3);
        for (var i = 0; i < count; i++)
        {
            input = Mutate(input);
        }

        return input;
    }

    private FuzzInput Mutate(FuzzInput input) => _random.Next(12) switch
    {
        0 => FlipBits(input),
        1 => Truncate(input),
        2 => Splice(input),
        3 => BlowUpNumber(input),
        4 => Nest(input),
        5 => ClaimHugeShape(input),
        6 => ClaimHugeBinarySize(input),
        7 => InsertFragment(input),
        8 => SwapDatatype(input),
        9 => InvalidUtf8(input),
        10 => ChangeHeaderLength(input),
        _ => DuplicateTensor(input),
    };

    private static FuzzInput With(FuzzInput input, byte[] body, int? headerLength, string mutation) =>
        new(body, headerLength, input.Mutations.Length == 0 ? mutation : input.Mutations + ", " + mutation);

    /// <summary>The JSON part as text, the binary part as bytes.</summary>
    private static (string Json, byte[] Binary) Split(FuzzInput input)
    {
        var length = input.HeaderLength is { } h && h >= 0 && h <= input.Body.Length ? h : input.Body.Length;
        return (Encoding.UTF8.GetString(input.Body, 0, length), input.Body[length..]);
    }

    /// <summary>A new JSON part before the same binary part; the header length follows the JSON when there was one.</summary>
    private FuzzInput Rejoin(FuzzInput input, string json, byte[] binary, string mutation)
    {
        var header = Encoding.UTF8.GetBytes(json);
        int? headerLength = input.HeaderLength is null ? null : header.Length;
        if (_random.Next(8) == 0)
        {
            // Sometimes leave the old length: the JSON and the binary part no longer line up.
            headerLength = input.HeaderLength;
        }

        return With(input, [.. header, .. binary], headerLength, mutation);
    }

    private FuzzInput FlipBits(FuzzInput input)
    {
        var body = (byte[])input.Body.Clone();
        if (body.Length == 0)
        {
            return input;
        }

        var flips = 1 + _random.Next(8);
        for (var i = 0; i < flips; i++)
        {
            body[_random.Next(body.Length)] ^= (byte)(1 << _random.Next(8));
        }

        return With(input, body, input.HeaderLength, $"flip {flips} bits");
    }

    private FuzzInput Truncate(FuzzInput input)
    {
        var at = _random.Next(input.Body.Length + 1);
        return With(input, input.Body[..at], input.HeaderLength, $"truncate at {at}");
    }

    private FuzzInput Splice(FuzzInput input)
    {
        var (other, _) = _seeds[_random.Next(_seeds.Count)];
        var from = _random.Next(other.Length + 1);
        var take = _random.Next(other.Length - from + 1);
        var at = _random.Next(input.Body.Length + 1);
        var drop = _random.Next(input.Body.Length - at + 1);
        byte[] body = [.. input.Body[..at], .. other.AsSpan(from, take), .. input.Body[(at + drop)..]];
        return With(input, body, input.HeaderLength, $"splice {take} bytes at {at}");
    }

    private FuzzInput BlowUpNumber(FuzzInput input)
    {
        var (json, binary) = Split(input);
        var digits = new List<int>();
        for (var i = 0; i < json.Length; i++)
        {
            if (char.IsAsciiDigit(json[i]) && (i == 0 || !char.IsAsciiDigit(json[i - 1])))
            {
                digits.Add(i);
            }
        }

        if (digits.Count == 0)
        {
            return input;
        }

        var start = digits[_random.Next(digits.Count)];
        var end = start;
        while (end < json.Length && (char.IsAsciiDigit(json[end]) || json[end] is '.' or 'e' or 'E' or '+' or '-'))
        {
            end++;
        }

        var blowup = s_numberBlowups[_random.Next(s_numberBlowups.Length)];
        return Rejoin(input, json[..start] + blowup + json[end..], binary, $"number {blowup[..Math.Min(20, blowup.Length)]}");
    }

    private FuzzInput Nest(FuzzInput input)
    {
        var (json, binary) = Split(input);
        var depth = _random.Next(4) switch { 0 => 63, 1 => 65, 2 => 1000, _ => 1 + _random.Next(100_000) };
        var open = _random.Next(2) == 0 ? '[' : '{';
        string nested = open == '['
            ? new string('[', depth) + "1" + new string(']', depth)
            : string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth);
        var data = json.IndexOf("\"data\":", StringComparison.Ordinal);
        var at = data >= 0 && _random.Next(2) == 0 ? data + 7 : _random.Next(json.Length + 1);
        if (data >= 0 && at == data + 7)
        {
            // Replace the data array by the nested one.
            var close = json.IndexOf(']', at);
            json = close < 0 ? json[..at] + nested : json[..at] + nested + json[(close + 1)..];
        }
        else
        {
            json = json[..at] + nested + json[at..];
        }

        return Rejoin(input, json, binary, $"nest {open} {depth} deep");
    }

    private FuzzInput ClaimHugeShape(FuzzInput input)
    {
        var (json, binary) = Split(input);
        var shape = json.IndexOf("\"shape\":[", StringComparison.Ordinal);
        if (shape < 0)
        {
            return input;
        }

        var start = shape + 9;
        var end = json.IndexOf(']', start);
        if (end < 0)
        {
            return input;
        }

        var dims = s_hugeDims[_random.Next(s_hugeDims.Length)];
        return Rejoin(input, json[..start] + dims + json[end..], binary, $"shape [{dims}]");
    }

    private FuzzInput ClaimHugeBinarySize(FuzzInput input)
    {
        var (json, binary) = Split(input);
        const string Key = "\"binary_data_size\":";
        var at = json.IndexOf(Key, StringComparison.Ordinal);
        var size = _random.Next(6) switch
        {
            0 => "1000000000",
            1 => "9223372036854775807",
            2 => "-1",
            3 => (binary.Length + 1).ToString(CultureInfo.InvariantCulture),
            4 => "1.5",
            _ => "18446744073709551616",
        };
        if (at < 0)
        {
            // Claim binary data the body does not have.
            var parameters = json.IndexOf("\"name\":", StringComparison.Ordinal);
            if (parameters < 0)
            {
                return input;
            }

            json = json[..parameters] + "\"parameters\":{" + Key + size + "}," + json[parameters..];
            return With(input, Encoding.UTF8.GetBytes(json), input.HeaderLength ?? json.Length, $"binary_data_size {size} added");
        }

        var start = at + Key.Length;
        var end = start;
        while (end < json.Length && json[end] is not (',' or '}'))
        {
            end++;
        }

        return Rejoin(input, json[..start] + size + json[end..], binary, $"binary_data_size {size}");
    }

    private FuzzInput InsertFragment(FuzzInput input)
    {
        var (json, binary) = Split(input);
        var fragment = s_fragments[_random.Next(s_fragments.Length)];
        var at = _random.Next(json.Length + 1);
        return Rejoin(input, json[..at] + fragment + json[at..], binary, $"insert {fragment} at {at}");
    }

    private FuzzInput SwapDatatype(FuzzInput input)
    {
        var (json, binary) = Split(input);
        const string Key = "\"datatype\":\"";
        var at = json.IndexOf(Key, StringComparison.Ordinal);
        if (at < 0)
        {
            return input;
        }

        var start = at + Key.Length;
        var end = json.IndexOf('"', start);
        if (end < 0)
        {
            return input;
        }

        var datatype = s_datatypes[_random.Next(s_datatypes.Length)];
        return Rejoin(input, json[..start] + datatype + json[end..], binary, $"datatype {datatype}");
    }

    private FuzzInput InvalidUtf8(FuzzInput input)
    {
        byte[][] bad = [[0xFF], [0xC3, 0x28], [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xED, 0xA0, 0x80], [0x00]];
        var insert = bad[_random.Next(bad.Length)];
        var limit = input.HeaderLength is { } h && h >= 0 && h <= input.Body.Length ? h : input.Body.Length;
        var at = _random.Next(limit + 1);
        byte[] body = [.. input.Body[..at], .. insert, .. input.Body[at..]];
        return With(input, body, input.HeaderLength is { } length ? length + insert.Length : null, "invalid UTF-8");
    }

    private FuzzInput ChangeHeaderLength(FuzzInput input)
    {
        var length = input.HeaderLength ?? input.Body.Length;
        int? changed = _random.Next(8) switch
        {
            0 => null,
            1 => 0,
            2 => -1,
            3 => length - 1,
            4 => length + 1,
            5 => input.Body.Length,
            6 => int.MaxValue,
            _ => _random.Next(input.Body.Length + 2),
        };
        return With(input, input.Body, changed, $"header length {changed?.ToString(CultureInfo.InvariantCulture) ?? "none"}");
    }

    private FuzzInput DuplicateTensor(FuzzInput input)
    {
        var (json, binary) = Split(input);
        var start = json.IndexOf("[{", StringComparison.Ordinal);
        var end = json.IndexOf("}]", StringComparison.Ordinal);
        if (start < 0 || end < start)
        {
            return input;
        }

        var copies = 1 + _random.Next(3);
        var tensor = json[(start + 1)..(end + 1)];
        var more = string.Concat(Enumerable.Repeat("," + tensor, copies));
        return Rejoin(input, json[..(end + 1)] + more + json[(end + 1)..], binary, $"{copies} more tensors");
    }
}
