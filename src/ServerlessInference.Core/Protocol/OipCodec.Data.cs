using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace ServerlessInference.Protocol;

// Parsing of JSON `data` arrays: one generic loop per element type, specialised by the JIT through
// static abstract members, writing straight into the tensor's byte buffer.
public static partial class OipCodec
{
    private static void ParseData(ref Utf8JsonReader reader, TensorDraft draft, string kind, long availableBytes)
    {
        var count = ElementCount(draft, kind);
        var datatype = draft.Datatype!.Value;

        // Every JSON element takes at least two bytes ("0,"), so a shape that asks for more elements than the
        // text can hold is a count mismatch: count the elements without allocating the buffer the shape claims.
        var elementSize = Math.Max(datatype.ElementSize(), 8);
        var canHold = count <= availableBytes / 2 + 1 && count * (Int128)elementSize <= Array.MaxLength;
        var label = draft.Label(kind);

        long found;
        switch (datatype)
        {
            case TensorDatatype.Bytes:
                var elements = canHold ? new byte[count][] : [];
                found = ReadBytesElements(ref reader, elements, label);
                draft.BytesData = elements;
                break;
            case TensorDatatype.Bool:
                found = ReadElements<byte, BoolElement>(ref reader, draft, count, canHold, label);
                break;
            case TensorDatatype.Uint8:
                found = ReadElements<byte, Uint8Element>(ref reader, draft, count, canHold, label);
                break;
            case TensorDatatype.Uint16:
                found = ReadElements<ushort, Uint16Element>(ref reader, draft, count, canHold, label);
                break;
            case TensorDatatype.Uint32:
                found = ReadElements<uint, Uint32Element>(ref reader, draft, count, canHold, label);
                break;
            case TensorDatatype.Uint64:
                found = ReadElements<ulong, Uint64Element>(ref reader, draft, count, canHold, label);
                break;
            case TensorDatatype.Int8:
                found = ReadElements<sbyte, Int8Element>(ref reader, draft, count, canHold, label);
                break;
            case TensorDatatype.Int16:
                found = ReadElements<short, Int16Element>(ref reader, draft, count, canHold, label);
                break;
            case TensorDatatype.Int32:
                found = ReadElements<int, Int32Element>(ref reader, draft, count, canHold, label);
                break;
            case TensorDatatype.Int64:
                found = ReadElements<long, Int64Element>(ref reader, draft, count, canHold, label);
                break;
            case TensorDatatype.Fp16:
                found = ReadElements<Half, Fp16Element>(ref reader, draft, count, canHold, label);
                break;
            case TensorDatatype.Fp32:
                found = ReadElements<float, Fp32Element>(ref reader, draft, count, canHold, label);
                break;
            case TensorDatatype.Fp64:
                found = ReadElements<double, Fp64Element>(ref reader, draft, count, canHold, label);
                break;
            default:
                throw new InvalidOperationException($"unhandled datatype {datatype}");
        }

        if (found != count)
        {
            throw BadRequest($"{label}: data has {found} elements, but shape [{string.Join(",", draft.Shape!)}] needs {count}");
        }

        if (!canHold)
        {
            throw BadRequest($"{label}: {count} elements are too many for one tensor");
        }

        draft.DataParsed = true;
    }

    private static long ReadElements<T, TElement>(ref Utf8JsonReader reader, TensorDraft draft, long count, bool canHold, string label)
        where T : unmanaged
        where TElement : IJsonElement<T>
    {
        var buffer = canHold ? GC.AllocateUninitializedArray<byte>((int)(count * TElement.Datatype.ElementSize())) : [];
        var destination = MemoryMarshal.Cast<byte, T>(buffer.AsSpan());
        long index = 0;
        var depth = 1;
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartArray:
                    depth++;
                    continue;
                case JsonTokenType.EndArray:
                    if (--depth == 0)
                    {
                        draft.Data = buffer;
                        return index;
                    }

                    continue;
            }

            if (!TElement.TryRead(ref reader, out var value))
            {
                throw BadRequest($"{label}: element {index} is not a valid {TElement.Datatype.Name()} ({TokenText(ref reader)})");
            }

            if ((ulong)index < (ulong)destination.Length)
            {
                destination[(int)index] = value;
            }

            index++;
        }

        throw new InvalidOperationException("data array is not closed");
    }

    private static long ReadBytesElements(ref Utf8JsonReader reader, byte[][] destination, string label)
    {
        long index = 0;
        var depth = 1;
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartArray:
                    depth++;
                    continue;
                case JsonTokenType.EndArray:
                    if (--depth == 0)
                    {
                        return index;
                    }

                    continue;
                case JsonTokenType.String:
                    if ((ulong)index < (ulong)destination.Length)
                    {
                        destination[index] = ReadUtf8(ref reader);
                    }

                    index++;
                    continue;
                default:
                    throw BadRequest($"{label}: element {index} is not a valid BYTES ({TokenText(ref reader)}); BYTES elements are JSON strings");
            }
        }

        throw new InvalidOperationException("data array is not closed");
    }

    private static byte[] ReadUtf8(ref Utf8JsonReader reader)
    {
        if (!reader.ValueIsEscaped)
        {
            return reader.ValueSpan.ToArray();
        }

        var buffer = new byte[reader.ValueSpan.Length];
        var length = reader.CopyString(buffer);
        return length == buffer.Length ? buffer : buffer.AsSpan(0, length).ToArray();
    }

    private static bool TryReadNamedFloat(ref Utf8JsonReader reader, out double value)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            if (reader.ValueTextEquals("NaN"u8))
            {
                value = double.NaN;
                return true;
            }

            if (reader.ValueTextEquals("Infinity"u8))
            {
                value = double.PositiveInfinity;
                return true;
            }

            if (reader.ValueTextEquals("-Infinity"u8))
            {
                value = double.NegativeInfinity;
                return true;
            }
        }

        value = 0;
        return false;
    }

    private interface IJsonElement<T>
    {
        static abstract TensorDatatype Datatype { get; }

        static abstract bool TryRead(ref Utf8JsonReader reader, out T value);
    }

    private readonly struct BoolElement : IJsonElement<byte>
    {
        public static TensorDatatype Datatype => TensorDatatype.Bool;

        public static bool TryRead(ref Utf8JsonReader reader, out byte value)
        {
            value = reader.TokenType == JsonTokenType.True ? (byte)1 : (byte)0;
            return reader.TokenType is JsonTokenType.True or JsonTokenType.False;
        }
    }

    private readonly struct Uint8Element : IJsonElement<byte>
    {
        public static TensorDatatype Datatype => TensorDatatype.Uint8;

        public static bool TryRead(ref Utf8JsonReader reader, out byte value)
        {
            value = 0;
            return reader.TokenType == JsonTokenType.Number && reader.TryGetByte(out value);
        }
    }

    private readonly struct Uint16Element : IJsonElement<ushort>
    {
        public static TensorDatatype Datatype => TensorDatatype.Uint16;

        public static bool TryRead(ref Utf8JsonReader reader, out ushort value)
        {
            value = 0;
            return reader.TokenType == JsonTokenType.Number && reader.TryGetUInt16(out value);
        }
    }

    private readonly struct Uint32Element : IJsonElement<uint>
    {
        public static TensorDatatype Datatype => TensorDatatype.Uint32;

        public static bool TryRead(ref Utf8JsonReader reader, out uint value)
        {
            value = 0;
            return reader.TokenType == JsonTokenType.Number && reader.TryGetUInt32(out value);
        }
    }

    private readonly struct Uint64Element : IJsonElement<ulong>
    {
        public static TensorDatatype Datatype => TensorDatatype.Uint64;

        public static bool TryRead(ref Utf8JsonReader reader, out ulong value)
        {
            value = 0;
            return reader.TokenType == JsonTokenType.Number && reader.TryGetUInt64(out value);
        }
    }

    private readonly struct Int8Element : IJsonElement<sbyte>
    {
        public static TensorDatatype Datatype => TensorDatatype.Int8;

        public static bool TryRead(ref Utf8JsonReader reader, out sbyte value)
        {
            value = 0;
            return reader.TokenType == JsonTokenType.Number && reader.TryGetSByte(out value);
        }
    }

    private readonly struct Int16Element : IJsonElement<short>
    {
        public static TensorDatatype Datatype => TensorDatatype.Int16;

        public static bool TryRead(ref Utf8JsonReader reader, out short value)
        {
            value = 0;
            return reader.TokenType == JsonTokenType.Number && reader.TryGetInt16(out value);
        }
    }

    private readonly struct Int32Element : IJsonElement<int>
    {
        public static TensorDatatype Datatype => TensorDatatype.Int32;

        public static bool TryRead(ref Utf8JsonReader reader, out int value)
        {
            value = 0;
            return reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out value);
        }
    }

    private readonly struct Int64Element : IJsonElement<long>
    {
        public static TensorDatatype Datatype => TensorDatatype.Int64;

        public static bool TryRead(ref Utf8JsonReader reader, out long value)
        {
            value = 0;
            return reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out value);
        }
    }

    private readonly struct Fp16Element : IJsonElement<Half>
    {
        public static TensorDatatype Datatype => TensorDatatype.Fp16;

        public static bool TryRead(ref Utf8JsonReader reader, out Half value)
        {
            if (reader.TokenType == JsonTokenType.Number)
            {
                // Parse the text directly (not via double) so rounding to half precision is exact; a number
                // beyond Half's range parses to infinity and is rejected.
                return Half.TryParse(reader.ValueSpan, NumberStyles.Float, CultureInfo.InvariantCulture, out value)
                    && Half.IsFinite(value);
            }

            var named = TryReadNamedFloat(ref reader, out var number);
            value = (Half)number;
            return named;
        }
    }

    private readonly struct Fp32Element : IJsonElement<float>
    {
        public static TensorDatatype Datatype => TensorDatatype.Fp32;

        public static bool TryRead(ref Utf8JsonReader reader, out float value)
        {
            if (reader.TokenType == JsonTokenType.Number)
            {
                // Out-of-range text parses to infinity: reject it rather than invent a value.
                return DecimalFloatParser.TryParseSingle(reader.ValueSpan, out value)
                    || (reader.TryGetSingle(out value) && float.IsFinite(value));
            }

            var named = TryReadNamedFloat(ref reader, out var number);
            value = (float)number;
            return named;
        }
    }

    private readonly struct Fp64Element : IJsonElement<double>
    {
        public static TensorDatatype Datatype => TensorDatatype.Fp64;

        public static bool TryRead(ref Utf8JsonReader reader, out double value)
        {
            if (reader.TokenType == JsonTokenType.Number)
            {
                return DecimalFloatParser.TryParseDouble(reader.ValueSpan, out value)
                    || (reader.TryGetDouble(out value) && double.IsFinite(value));
            }

            return TryReadNamedFloat(ref reader, out value);
        }
    }
}
