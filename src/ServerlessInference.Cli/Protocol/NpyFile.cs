using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace ServerlessInference.Cli.Protocol;

/// <summary>One array read from a NumPy <c>.npy</c> file: the protocol datatype, the shape, and the elements as
/// little-endian bytes in C order (what Triton's binary tensor extension carries).</summary>
public sealed record NpyArray(TensorDatatype Datatype, long[] Shape, ReadOnlyMemory<byte> Data)
{
    public long ElementCount => Shape.Aggregate(1L, (product, dim) => product * dim);
}

/// <summary>Reads NumPy's <c>.npy</c> format (versions 1.0, 2.0 and 3.0): the magic <c>\x93NUMPY</c>, the version,
/// the header length (2 bytes in 1.0, 4 in 2.0 and 3.0, little-endian), a Python dict literal
/// <c>{'descr': '&lt;f4', 'fortran_order': False, 'shape': (2, 3), }</c>, then the raw data.</summary>
/// <remarks>Little-endian (or byte-order-free) booleans, integers and floats of the sizes the protocol has. Refused with
/// a message that says why: big-endian data, Fortran order with more than one dim, structured or object dtypes, and a
/// data section whose length does not match the shape.</remarks>
public static class NpyFile
{
    private static readonly byte[] s_magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    public static NpyArray Read(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw CliException.Usage($"cannot read {path}: {ex.Message}");
        }

        try
        {
            return Parse(bytes);
        }
        catch (FormatException ex)
        {
            throw CliException.Usage($"{Path.GetFileName(path)}: {ex.Message}");
        }
    }

    /// <exception cref="FormatException">Not a .npy file this reader takes; the message says why.</exception>
    public static NpyArray Parse(ReadOnlyMemory<byte> file)
    {
        var span = file.Span;
        if (span.Length < 10 || !span[..6].SequenceEqual(s_magic))
        {
            throw new FormatException("not a .npy file (no \\x93NUMPY magic)");
        }

        int major = span[6], minor = span[7];
        int headerStart;
        long headerLength;
        switch (major)
        {
            case 1:
                headerLength = BinaryPrimitives.ReadUInt16LittleEndian(span[8..]);
                headerStart = 10;
                break;
            case 2 or 3 when span.Length >= 12:
                headerLength = BinaryPrimitives.ReadUInt32LittleEndian(span[8..]);
                headerStart = 12;
                break;
            default:
                throw new FormatException($".npy version {major}.{minor} is not supported (1.0, 2.0 and 3.0 are)");
        }

        if (headerStart + headerLength > span.Length)
        {
            throw new FormatException($"the header claims {headerLength} bytes but the file has {span.Length - headerStart} after the preamble");
        }

        var encoding = major == 3 ? Encoding.UTF8 : Encoding.Latin1;
        var header = encoding.GetString(span.Slice(headerStart, (int)headerLength));
        var dict = HeaderParser.ParseDict(header);

        var descr = dict.TryGetValue("descr", out var d) && d is string s ? s
            : throw new FormatException(dict.ContainsKey("descr") ? "structured dtypes are not supported (descr is not a string)" : "the header has no 'descr'");
        var fortran = dict.TryGetValue("fortran_order", out var f) && f is bool b ? b
            : throw new FormatException("the header has no boolean 'fortran_order'");
        var shape = dict.TryGetValue("shape", out var sh) && sh is List<long> dims ? dims.ToArray()
            : throw new FormatException("the header has no 'shape' tuple");

        var (datatype, size) = Dtype(descr);
        if (fortran && shape.Count(dim => dim != 1) > 1)
        {
            throw new FormatException("Fortran-order arrays are not supported; save with np.ascontiguousarray(a)");
        }

        long count = 1;
        foreach (var dim in shape)
        {
            count = checked(count * dim);
        }

        var dataStart = headerStart + (int)headerLength;
        var expected = checked(count * size);
        var actual = file.Length - dataStart;
        if (actual != expected)
        {
            throw new FormatException($"shape ({string.Join(", ", shape)}) of {descr} needs {expected} data bytes, the file has {actual}");
        }

        return new NpyArray(datatype, shape, file[dataStart..]);
    }

    /// <summary>The protocol datatype and element size of a NumPy type string such as <c>&lt;f4</c>.</summary>
    public static (TensorDatatype Datatype, int Size) Dtype(string descr)
    {
        if (descr.Length < 3)
        {
            throw new FormatException($"dtype '{descr}' is not supported");
        }

        var order = descr[0];
        var kind = descr[1..];
        (TensorDatatype, int) result = kind switch
        {
            "b1" => (TensorDatatype.Bool, 1),
            "u1" => (TensorDatatype.Uint8, 1),
            "u2" => (TensorDatatype.Uint16, 2),
            "u4" => (TensorDatatype.Uint32, 4),
            "u8" => (TensorDatatype.Uint64, 8),
            "i1" => (TensorDatatype.Int8, 1),
            "i2" => (TensorDatatype.Int16, 2),
            "i4" => (TensorDatatype.Int32, 4),
            "i8" => (TensorDatatype.Int64, 8),
            "f2" => (TensorDatatype.Fp16, 2),
            "f4" => (TensorDatatype.Fp32, 4),
            "f8" => (TensorDatatype.Fp64, 8),
            _ => throw new FormatException($"dtype '{descr}' has no protocol datatype (booleans, integers and floats of 1-8 bytes do)"),
        };

        switch (order)
        {
            case '<' or '|':
                return result;
            case '=' when BitConverter.IsLittleEndian:
                return result;
            case '>' or '=' when result.Item2 == 1:
                return result;
            case '>' or '=':
                throw new FormatException($"dtype '{descr}' is big-endian; convert with a.astype('<{kind}')");
            default:
                throw new FormatException($"dtype '{descr}' has an unknown byte order '{order}'");
        }
    }

    /// <summary>The subset of Python literals a .npy header uses: a dict of string keys to strings, booleans, integers
    /// and tuples of integers.</summary>
    private ref struct HeaderParser(string text)
    {
        private int _pos;

        public static Dictionary<string, object> ParseDict(string text)
        {
            var parser = new HeaderParser(text);
            var dict = parser.Dict();
            parser.SkipSpace();
            if (parser._pos < text.Length)
            {
                throw new FormatException($"unexpected '{text[parser._pos]}' after the header dict");
            }

            return dict;
        }

        private Dictionary<string, object> Dict()
        {
            Expect('{');
            var dict = new Dictionary<string, object>(StringComparer.Ordinal);
            while (true)
            {
                SkipSpace();
                if (Peek() == '}')
                {
                    _pos++;
                    return dict;
                }

                var key = Value() as string ?? throw new FormatException("header dict keys must be strings");
                Expect(':');
                dict[key] = Value();
                SkipSpace();
                if (Peek() == ',')
                {
                    _pos++;
                }
                else if (Peek() != '}')
                {
                    throw new FormatException("header dict: expected ',' or '}'");
                }
            }
        }

        private object Value()
        {
            SkipSpace();
            var c = Peek();
            if (c is '\'' or '"')
            {
                _pos++;
                var end = text.IndexOf(c, _pos);
                if (end < 0)
                {
                    throw new FormatException("header: unterminated string");
                }

                var value = text[_pos..end];
                _pos = end + 1;
                return value;
            }

            if (c == '(')
            {
                _pos++;
                var items = new List<long>();
                while (true)
                {
                    SkipSpace();
                    if (Peek() == ')')
                    {
                        _pos++;
                        return items;
                    }

                    items.Add(Value() is long n and >= 0 ? n : throw new FormatException("header: shape dims must be non-negative integers"));
                    SkipSpace();
                    if (Peek() == ',')
                    {
                        _pos++;
                    }
                }
            }

            if (c == '[')
            {
                throw new FormatException("structured dtypes are not supported");
            }

            var start = _pos;
            while (_pos < text.Length && (char.IsLetterOrDigit(text[_pos]) || text[_pos] == '_'))
            {
                _pos++;
            }

            var word = text[start.._pos];
            return word switch
            {
                "True" => true,
                "False" => false,
                _ when long.TryParse(word.TrimEnd('L'), NumberStyles.None, CultureInfo.InvariantCulture, out var number) => number,
                _ => throw new FormatException($"header: unexpected '{(word.Length > 0 ? word : Peek().ToString())}'"),
            };
        }

        private void Expect(char c)
        {
            SkipSpace();
            if (Peek() != c)
            {
                throw new FormatException($"header: expected '{c}'");
            }

            _pos++;
        }

        private readonly char Peek() => _pos < text.Length ? text[_pos] : '\0';

        private void SkipSpace()
        {
            while (_pos < text.Length && char.IsWhiteSpace(text[_pos]))
            {
                _pos++;
            }
        }
    }
}
