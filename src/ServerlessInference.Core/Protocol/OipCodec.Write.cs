using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text.Json;
using System.Text.Unicode;

namespace ServerlessInference.Protocol;

// Writing: the JSON header through Utf8JsonWriter, `data` arrays formatted in one pass into a pooled buffer and
// written as one raw value, binary tensors appended after the header.
public static partial class OipCodec
{
    private static readonly JsonEncodedText[] s_datatypeNames =
        [.. TensorDatatypes.AllNames.Select(name => JsonEncodedText.Encode(name))];

    /// <summary>Writes an OIP v2 inference response.</summary>
    /// <param name="isBinaryOutput">True for outputs to send as binary tensors after the JSON; usually
    /// <see cref="InferenceRequest.WantsBinaryOutput"/>. A BYTES output that is not valid UTF-8 is always binary.</param>
    /// <returns>The length of the JSON part when any output is binary (the caller sets
    /// <c>Inference-Header-Content-Length</c> to it); otherwise null.</returns>
    /// <exception cref="InferenceException">ModelFailure when an output's data does not match its shape.</exception>
    public static int? WriteResponse(IBufferWriter<byte> destination, InferenceResponse response, Func<string, bool>? isBinaryOutput)
    {
        var outputs = response.Outputs;
        var binary = new bool[outputs.Count];
        var anyBinary = false;
        for (var i = 0; i < outputs.Count; i++)
        {
            CheckData(outputs[i], Output, InferenceError.ModelFailure);
            binary[i] = MustBeBinary(outputs[i]) || (isBinaryOutput?.Invoke(outputs[i].Name) ?? false);
            anyBinary |= binary[i];
        }

        int jsonLength;
        using (var writer = new Utf8JsonWriter(destination))
        {
            writer.WriteStartObject();
            writer.WriteString("model_name"u8, response.ModelName);
            if (response.ModelVersion is not null)
            {
                writer.WriteString("model_version"u8, response.ModelVersion);
            }

            if (response.Id is not null)
            {
                writer.WriteString("id"u8, response.Id);
            }

            WriteParameters(writer, response.Parameters);
            writer.WriteStartArray("outputs"u8);
            for (var i = 0; i < outputs.Count; i++)
            {
                WriteTensor(writer, outputs[i], binary[i], shapeFirst: false);
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.Flush();
            jsonLength = checked((int)writer.BytesCommitted);
        }

        return anyBinary ? AppendBinary(destination, outputs, binary, jsonLength) : null;
    }

    /// <summary>Writes an OIP v2 inference request (what a client or a queue sends).</summary>
    /// <param name="binary">Send every input as a binary tensor after the JSON (<c>binary_data_size</c>).
    /// A BYTES input that is not valid UTF-8 is always binary.</param>
    /// <returns>The length of the JSON part when any input is binary; otherwise null.</returns>
    /// <exception cref="InferenceException">BadRequest when an input's data does not match its shape.</exception>
    public static int? WriteRequest(IBufferWriter<byte> destination, InferenceRequest request, bool binary)
    {
        var inputs = request.Inputs;
        var isBinary = new bool[inputs.Count];
        var anyBinary = false;
        for (var i = 0; i < inputs.Count; i++)
        {
            CheckData(inputs[i], Input, InferenceError.BadRequest);
            isBinary[i] = binary || MustBeBinary(inputs[i]);
            anyBinary |= isBinary[i];
        }

        int jsonLength;
        using (var writer = new Utf8JsonWriter(destination))
        {
            writer.WriteStartObject();
            if (request.Id is not null)
            {
                writer.WriteString("id"u8, request.Id);
            }

            WriteParameters(writer, request.Parameters);
            writer.WriteStartArray("inputs"u8);
            for (var i = 0; i < inputs.Count; i++)
            {
                WriteTensor(writer, inputs[i], isBinary[i], shapeFirst: true);
            }

            writer.WriteEndArray();
            if (request.Outputs is not null)
            {
                writer.WriteStartArray("outputs"u8);
                foreach (var output in request.Outputs)
                {
                    writer.WriteStartObject();
                    writer.WriteString("name"u8, output.Name);
                    WriteParameters(writer, output.Parameters);
                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
            writer.Flush();
            jsonLength = checked((int)writer.BytesCommitted);
        }

        return anyBinary ? AppendBinary(destination, inputs, isBinary, jsonLength) : null;
    }

    private static void WriteParameters(Utf8JsonWriter writer, Dictionary<string, object>? parameters)
    {
        if (parameters is { Count: > 0 })
        {
            writer.WritePropertyName("parameters"u8);
            OipParameters.Write(writer, parameters);
        }
    }

    private static void CheckData(InferTensor tensor, string kind, InferenceError error)
    {
        var count = tensor.ElementCount;
        var datatype = tensor.Datatype;
        if (datatype != TensorDatatype.Bytes && tensor.Data.Length % datatype.ElementSize() != 0)
        {
            throw new InferenceException(error, $"{kind} '{tensor.Name}': {tensor.Data.Length} bytes of data is not a whole number of {datatype.Name()} elements");
        }

        if (tensor.DataElementCount != count)
        {
            throw new InferenceException(error, $"{kind} '{tensor.Name}' holds {tensor.DataElementCount} elements, but shape [{string.Join(",", tensor.Shape)}] needs {count}");
        }
    }

    private static bool MustBeBinary(InferTensor tensor)
    {
        if (tensor.Datatype != TensorDatatype.Bytes || tensor.BytesData is null)
        {
            return false;
        }

        foreach (var element in tensor.BytesData)
        {
            if (!Utf8.IsValid(element))
            {
                return true;
            }
        }

        return false;
    }

    private static long BinarySize(InferTensor tensor)
    {
        if (tensor.Datatype != TensorDatatype.Bytes)
        {
            return tensor.Data.Length;
        }

        long size = 0;
        foreach (var element in tensor.BytesData ?? [])
        {
            size += 4 + element.Length;
        }

        return size;
    }

    private static void WriteTensor(Utf8JsonWriter writer, InferTensor tensor, bool binary, bool shapeFirst)
    {
        writer.WriteStartObject();
        writer.WriteString("name"u8, tensor.Name);
        if (shapeFirst)
        {
            WriteShape(writer, tensor.Shape);
            writer.WriteString("datatype"u8, s_datatypeNames[(int)tensor.Datatype]);
        }
        else
        {
            writer.WriteString("datatype"u8, s_datatypeNames[(int)tensor.Datatype]);
            WriteShape(writer, tensor.Shape);
        }

        // A stale binary_data_size (from a parsed message) is never copied: the writer decides the transport.
        var parameters = tensor.Parameters;
        var hasOther = parameters is not null
            && (parameters.Count > 1 || (parameters.Count == 1 && !parameters.ContainsKey(ParameterNames.BinaryDataSize)));
        if (binary || hasOther)
        {
            writer.WriteStartObject("parameters"u8);
            if (parameters is not null)
            {
                OipParameters.WriteProperties(writer, parameters, skipName: ParameterNames.BinaryDataSize);
            }

            if (binary)
            {
                writer.WriteNumber(ParameterNames.BinaryDataSize, BinarySize(tensor));
            }

            writer.WriteEndObject();
        }

        if (!binary)
        {
            writer.WritePropertyName("data"u8);
            WriteData(writer, tensor);
        }

        writer.WriteEndObject();
    }

    private static void WriteShape(Utf8JsonWriter writer, long[] shape)
    {
        writer.WriteStartArray("shape"u8);
        foreach (var dim in shape)
        {
            writer.WriteNumberValue(dim);
        }

        writer.WriteEndArray();
    }

    private static void WriteData(Utf8JsonWriter writer, InferTensor tensor)
    {
        switch (tensor.Datatype)
        {
            case TensorDatatype.Bool:
                WriteBools(writer, tensor.Data.Span);
                break;
            case TensorDatatype.Uint8:
                WriteNumbers<byte>(writer, tensor.AsSpan<byte>(), 3);
                break;
            case TensorDatatype.Uint16:
                WriteNumbers<ushort>(writer, tensor.AsSpan<ushort>(), 5);
                break;
            case TensorDatatype.Uint32:
                WriteNumbers<uint>(writer, tensor.AsSpan<uint>(), 10);
                break;
            case TensorDatatype.Uint64:
                WriteNumbers<ulong>(writer, tensor.AsSpan<ulong>(), 20);
                break;
            case TensorDatatype.Int8:
                WriteNumbers<sbyte>(writer, tensor.AsSpan<sbyte>(), 4);
                break;
            case TensorDatatype.Int16:
                WriteNumbers<short>(writer, tensor.AsSpan<short>(), 6);
                break;
            case TensorDatatype.Int32:
                WriteNumbers<int>(writer, tensor.AsSpan<int>(), 11);
                break;
            case TensorDatatype.Int64:
                WriteNumbers<long>(writer, tensor.AsSpan<long>(), 20);
                break;
            case TensorDatatype.Fp16:
                WriteNumbers<Half>(writer, tensor.AsSpan<Half>(), 8);
                break;
            case TensorDatatype.Fp32:
                WriteNumbers<float>(writer, tensor.AsSpan<float>(), 12);
                break;
            case TensorDatatype.Fp64:
                WriteNumbers<double>(writer, tensor.AsSpan<double>(), 20);
                break;
            case TensorDatatype.Bytes:
                writer.WriteStartArray();
                foreach (var element in tensor.BytesData ?? [])
                {
                    writer.WriteStringValue(element);
                }

                writer.WriteEndArray();
                break;
            default:
                throw new InvalidOperationException($"unhandled datatype {tensor.Datatype}");
        }
    }

    /// <summary>Formats <paramref name="values"/> as one JSON array in a pooled buffer and writes it as a raw value,
    /// which avoids the writer's per-value bookkeeping.</summary>
    /// <param name="typicalLength">Characters a typical element takes; the buffer grows if elements are longer.</param>
    private static void WriteNumbers<T>(Utf8JsonWriter writer, ReadOnlySpan<T> values, int typicalLength)
        where T : INumberBase<T>, IUtf8SpanFormattable
    {
        // Longest element: a quoted "-Infinity", or a double such as -2.2250738585072014E-308; with a comma.
        const int MaxElement = 32;
        var buffer = ArrayPool<byte>.Shared.Rent(checked((values.Length * (typicalLength + 1)) + MaxElement + 2));
        try
        {
            var position = 0;
            buffer[position++] = (byte)'[';
            for (var i = 0; i < values.Length; i++)
            {
                if (buffer.Length - position < MaxElement)
                {
                    buffer = Grow(buffer, position, values.Length - i);
                }

                if (i > 0)
                {
                    buffer[position++] = (byte)',';
                }

                var value = values[i];
                if (T.IsFinite(value))
                {
                    value.TryFormat(buffer.AsSpan(position), out var written, default, CultureInfo.InvariantCulture);
                    position += written;
                }
                else
                {
                    var text = T.IsNaN(value) ? "\"NaN\""u8 : T.IsNegative(value) ? "\"-Infinity\""u8 : "\"Infinity\""u8;
                    text.CopyTo(buffer.AsSpan(position));
                    position += text.Length;
                }
            }

            buffer[position++] = (byte)']';
            writer.WriteRawValue(buffer.AsSpan(0, position), skipInputValidation: true);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static byte[] Grow(byte[] buffer, int used, int remainingElements)
    {
        var larger = ArrayPool<byte>.Shared.Rent(checked(buffer.Length + Math.Max(buffer.Length / 2, remainingElements * 8) + 64));
        buffer.AsSpan(0, used).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(buffer);
        return larger;
    }

    private static void WriteBools(Utf8JsonWriter writer, ReadOnlySpan<byte> values)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(checked((values.Length * 6) + 2));
        try
        {
            var position = 0;
            buffer[position++] = (byte)'[';
            for (var i = 0; i < values.Length; i++)
            {
                if (i > 0)
                {
                    buffer[position++] = (byte)',';
                }

                var text = values[i] != 0 ? "true"u8 : "false"u8;
                text.CopyTo(buffer.AsSpan(position));
                position += text.Length;
            }

            buffer[position++] = (byte)']';
            writer.WriteRawValue(buffer.AsSpan(0, position), skipInputValidation: true);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static int AppendBinary(IBufferWriter<byte> destination, IReadOnlyList<InferTensor> tensors, bool[] binary, int jsonLength)
    {
        for (var i = 0; i < tensors.Count; i++)
        {
            if (!binary[i])
            {
                continue;
            }

            var tensor = tensors[i];
            if (tensor.Datatype != TensorDatatype.Bytes)
            {
                destination.Write(tensor.Data.Span);
                continue;
            }

            foreach (var element in tensor.BytesData ?? [])
            {
                var span = destination.GetSpan(4 + element.Length);
                BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)element.Length);
                element.CopyTo(span[4..]);
                destination.Advance(4 + element.Length);
            }
        }

        return jsonLength;
    }
}
