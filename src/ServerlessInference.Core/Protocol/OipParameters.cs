using System.Globalization;
using System.Text.Json;

namespace ServerlessInference.Protocol;

/// <summary>Reads and writes OIP <c>parameters</c> objects, whose values are strings, booleans, longs or doubles.</summary>
/// <remarks>
/// A JSON integer reads as <see cref="long"/>, any other number as <see cref="double"/>. A double is always written
/// with a fraction or exponent (<c>1.0</c>, not <c>1</c>), so it reads back as a double. Non-finite doubles are
/// written as the strings <c>"NaN"</c>, <c>"Infinity"</c>, <c>"-Infinity"</c> (JSON has no such numbers).
/// </remarks>
public static class OipParameters
{
    /// <summary>Reads the object the reader is on; a JSON <c>null</c> gives null.</summary>
    /// <param name="owner">Names the owner in error messages, e.g. <c>input 'x'</c>.</param>
    /// <exception cref="InferenceException">BadRequest when the value is not an object of scalars.</exception>
    public static Dictionary<string, object>? Read(ref Utf8JsonReader reader, string owner)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw OipCodec.BadRequest($"{owner}: parameters must be a JSON object");
        }

        var parameters = new Dictionary<string, object>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var name = reader.GetString()!;
            reader.Read();
            parameters[name] = reader.TokenType switch
            {
                JsonTokenType.String => reader.GetString()!,
                JsonTokenType.True => true,
                JsonTokenType.False => false,
                JsonTokenType.Number when reader.TryGetInt64(out var integer) => integer,
                JsonTokenType.Number when reader.TryGetDouble(out var number) && double.IsFinite(number) => number,
                _ => throw OipCodec.BadRequest($"{owner}: parameter '{name}' must be a string, number or boolean"),
            };
        }

        return parameters;
    }

    /// <summary>Writes <paramref name="parameters"/> as a JSON object (the caller writes the property name).</summary>
    /// <exception cref="ArgumentException">A value is not a string, bool, long, int, double or float.</exception>
    public static void Write(Utf8JsonWriter writer, IEnumerable<KeyValuePair<string, object>> parameters)
    {
        writer.WriteStartObject();
        WriteProperties(writer, parameters, skipName: null);
        writer.WriteEndObject();
    }

    internal static void WriteProperties(Utf8JsonWriter writer, IEnumerable<KeyValuePair<string, object>> parameters, string? skipName)
    {
        foreach (var (name, value) in parameters)
        {
            if (name == skipName)
            {
                continue;
            }

            writer.WritePropertyName(name);
            switch (value)
            {
                case string text:
                    writer.WriteStringValue(text);
                    break;
                case bool flag:
                    writer.WriteBooleanValue(flag);
                    break;
                case long integer:
                    writer.WriteNumberValue(integer);
                    break;
                case int integer:
                    writer.WriteNumberValue(integer);
                    break;
                case double number:
                    WriteDouble(writer, number);
                    break;
                case float number:
                    WriteDouble(writer, number);
                    break;
                default:
                    throw new ArgumentException($"parameter '{name}' has a value of type {value?.GetType().Name ?? "null"}; only string, bool, long and double are allowed");
            }
        }
    }

    private static void WriteDouble(Utf8JsonWriter writer, double number)
    {
        if (!double.IsFinite(number))
        {
            writer.WriteStringValue(double.IsNaN(number) ? "NaN" : number > 0 ? "Infinity" : "-Infinity");
            return;
        }

        Span<byte> text = stackalloc byte[40];
        number.TryFormat(text, out var length, "R", CultureInfo.InvariantCulture);
        if (text[..length].IndexOfAny(".Ee"u8) < 0)
        {
            ".0"u8.CopyTo(text[length..]);
            length += 2;
        }

        writer.WriteRawValue(text[..length], skipInputValidation: true);
    }

    public static bool TryGetString(IReadOnlyDictionary<string, object>? parameters, string name, out string value)
    {
        if (parameters is not null && parameters.TryGetValue(name, out var raw) && raw is string text)
        {
            value = text;
            return true;
        }

        value = "";
        return false;
    }

    public static bool TryGetBoolean(IReadOnlyDictionary<string, object>? parameters, string name, out bool value)
    {
        if (parameters is not null && parameters.TryGetValue(name, out var raw) && raw is bool flag)
        {
            value = flag;
            return true;
        }

        value = false;
        return false;
    }

    /// <summary>Gets an integer parameter (a long, or an int set in code).</summary>
    public static bool TryGetInt64(IReadOnlyDictionary<string, object>? parameters, string name, out long value)
    {
        if (parameters is not null && parameters.TryGetValue(name, out var raw))
        {
            switch (raw)
            {
                case long integer:
                    value = integer;
                    return true;
                case int integer:
                    value = integer;
                    return true;
            }
        }

        value = 0;
        return false;
    }

    /// <summary>Gets a numeric parameter; integers convert to double.</summary>
    public static bool TryGetDouble(IReadOnlyDictionary<string, object>? parameters, string name, out double value)
    {
        if (parameters is not null && parameters.TryGetValue(name, out var raw))
        {
            switch (raw)
            {
                case double number:
                    value = number;
                    return true;
                case float number:
                    value = number;
                    return true;
                case long integer:
                    value = integer;
                    return true;
                case int integer:
                    value = integer;
                    return true;
            }
        }

        value = 0;
        return false;
    }
}
