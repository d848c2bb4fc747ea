using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace ServerlessInference.Protocol;

/// <summary>Reads and writes KServe Open Inference Protocol v2 bodies, with Triton's binary tensor data extension.</summary>
/// <remarks>
/// <para>Parsing reads the JSON once with <see cref="Utf8JsonReader"/> straight into a byte buffer of the tensor's
/// datatype (little-endian, as <see cref="InferTensor.Data"/> expects). When <c>data</c> comes before <c>shape</c>
/// or <c>datatype</c>, its span is remembered and parsed once the tensor object has been read.</para>
/// <para>With <c>Inference-Header-Content-Length</c>, binary tensors are slices of the body (no copy): the body buffer
/// must stay unchanged for the life of the parsed message. <c>binary_data_size</c> is removed from a parsed tensor's
/// <see cref="InferTensor.Parameters"/> (it describes the transport, not the tensor; the writers add it back).</para>
/// <para>Nested <c>data</c> arrays are flattened in row-major order; only the element count is checked against the shape.
/// JSON has no NaN or infinity: FP16/FP32/FP64 elements are written as the strings <c>"NaN"</c>, <c>"Infinity"</c>,
/// <c>"-Infinity"</c> (valid JSON; numpy and System.Text.Json's named-literal handling read them), and those strings
/// are accepted when parsing. A BYTES tensor whose elements are not all valid UTF-8 cannot be a JSON string, so the
/// writers always send it binary.</para>
/// <para>Every method is thread-safe. Failures are <see cref="InferenceException"/> with <see cref="InferenceError.BadRequest"/>.</para>
/// </remarks>
public static partial class OipCodec
{
    private static readonly JsonReaderOptions s_readerOptions = new() { MaxDepth = 64 };

    private const string Input = "input";
    private const string Output = "output";

    /// <summary>Parses an OIP v2 inference request.</summary>
    /// <param name="body">The whole HTTP body; binary tensors are sliced from it, so it must not be reused.</param>
    /// <param name="inferenceHeaderContentLength">The <c>Inference-Header-Content-Length</c> header, when present.</param>
    public static InferenceRequest ParseRequest(ReadOnlyMemory<byte> body, int? inferenceHeaderContentLength)
    {
        var (json, binary) = SplitBody(body, inferenceHeaderContentLength);
        string? id = null;
        Dictionary<string, object>? parameters = null;
        List<TensorDraft>? inputs = null;
        List<RequestedOutput>? outputs = null;
        try
        {
            var reader = new Utf8JsonReader(json.Span, s_readerOptions);
            ReadStartObject(ref reader, "request");
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                if (reader.ValueTextEquals("id"u8))
                {
                    reader.Read();
                    id = ReadOptionalString(ref reader, "request 'id'");
                }
                else if (reader.ValueTextEquals("parameters"u8))
                {
                    reader.Read();
                    parameters = OipParameters.Read(ref reader, "request");
                }
                else if (reader.ValueTextEquals("inputs"u8))
                {
                    reader.Read();
                    inputs = ReadTensors(ref reader, Input, json.Length);
                }
                else if (reader.ValueTextEquals("outputs"u8))
                {
                    reader.Read();
                    outputs = ReadRequestedOutputs(ref reader);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            ReadEnd(ref reader);
            if (inputs is null || inputs.Count == 0)
            {
                throw BadRequest("request has no inputs");
            }

            return new InferenceRequest
            {
                Id = id,
                Parameters = parameters,
                Inputs = FinishTensors(inputs, json, binary, Input),
                Outputs = outputs,
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw InvalidJson(e);
        }
    }

    /// <summary>Parses an OIP v2 inference response (the mirror of <see cref="WriteResponse"/>).</summary>
    /// <exception cref="InferenceException">BadRequest for a malformed body; ModelFailure with the server's message for an
    /// OIP error body <c>{"error": "..."}</c>.</exception>
    public static InferenceResponse ParseResponse(ReadOnlyMemory<byte> body, int? inferenceHeaderContentLength)
    {
        var (json, binary) = SplitBody(body, inferenceHeaderContentLength);
        string? modelName = null;
        string? modelVersion = null;
        string? id = null;
        string? error = null;
        Dictionary<string, object>? parameters = null;
        List<TensorDraft>? outputs = null;
        try
        {
            var reader = new Utf8JsonReader(json.Span, s_readerOptions);
            ReadStartObject(ref reader, "response");
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                if (reader.ValueTextEquals("model_name"u8))
                {
                    reader.Read();
                    modelName = ReadOptionalString(ref reader, "response 'model_name'");
                }
                else if (reader.ValueTextEquals("model_version"u8))
                {
                    reader.Read();
                    modelVersion = ReadOptionalString(ref reader, "response 'model_version'");
                }
                else if (reader.ValueTextEquals("id"u8))
                {
                    reader.Read();
                    id = ReadOptionalString(ref reader, "response 'id'");
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    error = ReadOptionalString(ref reader, "response 'error'");
                }
                else if (reader.ValueTextEquals("parameters"u8))
                {
                    reader.Read();
                    parameters = OipParameters.Read(ref reader, "response");
                }
                else if (reader.ValueTextEquals("outputs"u8))
                {
                    reader.Read();
                    outputs = ReadTensors(ref reader, Output, json.Length);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            ReadEnd(ref reader);
            if (outputs is null)
            {
                throw error is not null
                    ? new InferenceException(InferenceError.ModelFailure, error)
                    : BadRequest("response has no outputs");
            }

            if (modelName is null)
            {
                throw BadRequest("response has no model_name");
            }

            return new InferenceResponse
            {
                ModelName = modelName,
                ModelVersion = modelVersion,
                Id = id,
                Parameters = parameters,
                Outputs = FinishTensors(outputs, json, binary, Output),
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw InvalidJson(e);
        }
    }

    internal static InferenceException BadRequest(string message) => new(InferenceError.BadRequest, message);

    private static InferenceException InvalidJson(Exception e) =>
        new(InferenceError.BadRequest, $"invalid JSON: {e.Message}", e);

    private static (ReadOnlyMemory<byte> Json, ReadOnlyMemory<byte>? Binary) SplitBody(ReadOnlyMemory<byte> body, int? headerLength)
    {
        if (headerLength is not { } length)
        {
            return (body, null);
        }

        if (length <= 0 || length > body.Length)
        {
            throw BadRequest($"{ParameterNames.InferenceHeaderContentLength} {length} is outside the body of {body.Length} bytes");
        }

        return (body[..length], body[length..]);
    }

    private static void ReadStartObject(ref Utf8JsonReader reader, string what)
    {
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw BadRequest($"{what} body must be a JSON object");
        }
    }

    private static void ReadEnd(ref Utf8JsonReader reader)
    {
        // Throws on anything but whitespace after the top-level object.
        reader.Read();
    }

    private static string? ReadOptionalString(ref Utf8JsonReader reader, string what) => reader.TokenType switch
    {
        JsonTokenType.String => reader.GetString(),
        JsonTokenType.Null => null,
        _ => throw BadRequest($"{what} must be a string"),
    };

    private static List<RequestedOutput>? ReadRequestedOutputs(ref Utf8JsonReader reader)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw BadRequest("request 'outputs' must be a JSON array");
        }

        var outputs = new List<RequestedOutput>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw BadRequest($"requested output #{outputs.Count} must be a JSON object");
            }

            string? name = null;
            Dictionary<string, object>? parameters = null;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                if (reader.ValueTextEquals("name"u8))
                {
                    reader.Read();
                    name = reader.TokenType == JsonTokenType.String
                        ? reader.GetString()
                        : throw BadRequest($"requested output #{outputs.Count}: name must be a string");
                }
                else if (reader.ValueTextEquals("parameters"u8))
                {
                    reader.Read();
                    parameters = OipParameters.Read(ref reader, $"requested output #{outputs.Count}");
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            outputs.Add(new RequestedOutput
            {
                Name = name ?? throw BadRequest($"requested output #{outputs.Count} has no name"),
                Parameters = parameters,
            });
        }

        return outputs;
    }

    /// <summary>A tensor whose JSON object has been read but whose data may still be pending.</summary>
    private sealed class TensorDraft(int index)
    {
        public int Index { get; } = index;

        public string? Name { get; set; }

        public long[]? Shape { get; set; }

        public TensorDatatype? Datatype { get; set; }

        public Dictionary<string, object>? Parameters { get; set; }

        public bool HasData { get; set; }

        public bool DataParsed { get; set; }

        /// <summary>Where the unparsed <c>data</c> array lies in the JSON header.</summary>
        public int DataStart { get; set; }

        public int DataLength { get; set; }

        public ReadOnlyMemory<byte> Data { get; set; }

        public byte[][]? BytesData { get; set; }

        public string Label(string kind) => Name is null ? $"{kind} #{Index}" : $"{kind} '{Name}'";
    }

    private static List<TensorDraft> ReadTensors(ref Utf8JsonReader reader, string kind, long jsonLength)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw BadRequest($"'{kind}s' must be a JSON array");
        }

        var tensors = new List<TensorDraft>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            tensors.Add(ReadTensor(ref reader, kind, tensors.Count, jsonLength));
        }

        return tensors;
    }

    private static TensorDraft ReadTensor(ref Utf8JsonReader reader, string kind, int index, long jsonLength)
    {
        var draft = new TensorDraft(index);
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw BadRequest($"{draft.Label(kind)} must be a JSON object");
        }

        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            if (reader.ValueTextEquals("name"u8))
            {
                reader.Read();
                draft.Name = reader.TokenType == JsonTokenType.String
                    ? reader.GetString()
                    : throw BadRequest($"{draft.Label(kind)}: name must be a string");
            }
            else if (reader.ValueTextEquals("shape"u8))
            {
                reader.Read();
                draft.Shape = ReadShape(ref reader, draft, kind);
            }
            else if (reader.ValueTextEquals("datatype"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.String)
                {
                    throw BadRequest($"{draft.Label(kind)}: datatype must be a string");
                }

                var name = reader.GetString()!;
                draft.Datatype = TensorDatatypes.TryParse(name, out var datatype)
                    ? datatype
                    : throw BadRequest($"{draft.Label(kind)}: unknown datatype '{name}'");
            }
            else if (reader.ValueTextEquals("parameters"u8))
            {
                reader.Read();
                draft.Parameters = OipParameters.Read(ref reader, draft.Label(kind));
            }
            else if (reader.ValueTextEquals("data"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    throw BadRequest($"{draft.Label(kind)}: data must be a JSON array");
                }

                draft.HasData = true;
                if (draft is { Name: not null, Shape: not null, Datatype: not null })
                {
                    // The usual order (name, shape, datatype, data): parse in the same pass.
                    ParseData(ref reader, draft, kind, jsonLength - reader.TokenStartIndex);
                }
                else
                {
                    draft.DataStart = checked((int)reader.TokenStartIndex);
                    reader.Skip();
                    draft.DataLength = checked((int)reader.BytesConsumed) - draft.DataStart;
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (draft.Name is null)
        {
            throw BadRequest($"{draft.Label(kind)} has no name");
        }

        if (draft.Shape is null)
        {
            throw BadRequest($"{draft.Label(kind)} has no shape");
        }

        if (draft.Datatype is null)
        {
            throw BadRequest($"{draft.Label(kind)} has no datatype");
        }

        return draft;
    }

    private static long[] ReadShape(ref Utf8JsonReader reader, TensorDraft draft, string kind)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw BadRequest($"{draft.Label(kind)}: shape must be a JSON array of non-negative integers");
        }

        var dims = new List<long>(4);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var dim) || dim < 0)
            {
                throw BadRequest($"{draft.Label(kind)}: shape must be a JSON array of non-negative integers");
            }

            dims.Add(dim);
        }

        return [.. dims];
    }

    private static long ElementCount(TensorDraft draft, string kind)
    {
        try
        {
            return ShapeMath.ElementCount(draft.Shape!);
        }
        catch (InferenceException e)
        {
            throw BadRequest($"{draft.Label(kind)}: {e.Message}");
        }
    }

    private static List<InferTensor> FinishTensors(List<TensorDraft> drafts, ReadOnlyMemory<byte> json, ReadOnlyMemory<byte>? binary, string kind)
    {
        AttachBinary(drafts, binary, kind);
        var tensors = new List<InferTensor>(drafts.Count);
        foreach (var draft in drafts)
        {
            if (!draft.DataParsed)
            {
                if (!draft.HasData)
                {
                    throw BadRequest($"{draft.Label(kind)} has no data");
                }

                var reader = new Utf8JsonReader(json.Span.Slice(draft.DataStart, draft.DataLength), s_readerOptions);
                reader.Read();
                ParseData(ref reader, draft, kind, draft.DataLength);
            }

            tensors.Add(new InferTensor
            {
                Name = draft.Name!,
                Datatype = draft.Datatype!.Value,
                Shape = draft.Shape!,
                Data = draft.Data,
                BytesData = draft.BytesData,
                Parameters = draft.Parameters,
            });
        }

        return tensors;
    }

    private static void AttachBinary(List<TensorDraft> drafts, ReadOnlyMemory<byte>? binary, string kind)
    {
        Int128 total = 0;
        var anyBinary = false;
        foreach (var draft in drafts)
        {
            if (draft.Parameters is null || !draft.Parameters.TryGetValue(ParameterNames.BinaryDataSize, out var size))
            {
                continue;
            }

            if (binary is null)
            {
                throw BadRequest($"{draft.Label(kind)} has binary_data_size but the request has no {ParameterNames.InferenceHeaderContentLength} header");
            }

            if (draft.HasData)
            {
                throw BadRequest($"{draft.Label(kind)} has both data and binary_data_size");
            }

            if (size is not long length || length < 0)
            {
                throw BadRequest($"{draft.Label(kind)}: binary_data_size must be a non-negative integer");
            }

            total += length;
            anyBinary = true;
        }

        if (binary is not { } part)
        {
            return;
        }

        if (total != part.Length)
        {
            throw BadRequest(anyBinary
                ? $"binary data after the JSON header is {part.Length} bytes, but the binary_data_size values sum to {total}"
                : $"{part.Length} bytes follow the JSON header, but no {kind} has binary_data_size");
        }

        var offset = 0;
        foreach (var draft in drafts)
        {
            if (draft.Parameters is null || !draft.Parameters.Remove(ParameterNames.BinaryDataSize, out var size))
            {
                continue;
            }

            if (draft.Parameters.Count == 0)
            {
                draft.Parameters = null;
            }

            var length = (int)(long)size;
            var slice = part.Slice(offset, length);
            offset += length;
            var count = ElementCount(draft, kind);
            var datatype = draft.Datatype!.Value;
            if (datatype == TensorDatatype.Bytes)
            {
                draft.BytesData = SplitBinaryBytes(slice.Span, count, draft, kind);
            }
            else
            {
                var expected = (Int128)count * datatype.ElementSize();
                if (expected != length)
                {
                    throw BadRequest($"{draft.Label(kind)}: binary_data_size is {length} bytes, but shape [{string.Join(",", draft.Shape!)}] of {datatype.Name()} needs {expected}");
                }

                draft.Data = slice;
            }

            draft.DataParsed = true;
        }
    }

    /// <summary>Splits Triton's binary BYTES layout: per element a 4-byte little-endian length, then the bytes.</summary>
    private static byte[][] SplitBinaryBytes(ReadOnlySpan<byte> data, long count, TensorDraft draft, string kind)
    {
        // Each element takes at least 4 bytes, which bounds what a lying shape can make us allocate.
        var elements = new List<byte[]>((int)Math.Min(count, data.Length / 4));
        while (!data.IsEmpty)
        {
            if (data.Length < 4)
            {
                throw BadRequest($"{draft.Label(kind)}: binary BYTES data is truncated at element {elements.Count}");
            }

            var length = BinaryPrimitives.ReadUInt32LittleEndian(data);
            if (length > data.Length - 4)
            {
                throw BadRequest($"{draft.Label(kind)}: binary BYTES data is truncated at element {elements.Count}");
            }

            elements.Add(data.Slice(4, (int)length).ToArray());
            data = data[(4 + (int)length)..];
        }

        if (elements.Count != count)
        {
            throw BadRequest($"{draft.Label(kind)}: binary BYTES data holds {elements.Count} elements, but shape [{string.Join(",", draft.Shape!)}] needs {count}");
        }

        return [.. elements];
    }

    private static string TokenText(ref Utf8JsonReader reader)
    {
        var text = reader.TokenType switch
        {
            JsonTokenType.StartObject => "{",
            JsonTokenType.StartArray => "[",
            JsonTokenType.String => $"\"{Encoding.UTF8.GetString(reader.ValueSpan)}\"",
            _ => Encoding.UTF8.GetString(reader.ValueSpan),
        };
        return text.Length > 40 ? text[..40] + "..." : text;
    }
}
