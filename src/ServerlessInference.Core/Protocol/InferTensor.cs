using System.Runtime.InteropServices;

namespace ServerlessInference.Protocol;

/// <summary>One named tensor of an OIP v2 request or response.</summary>
/// <remarks>
/// Fixed-size datatypes keep their elements as raw little-endian bytes in <see cref="Data"/>, so JSON,
/// Triton binary tensors and ONNX Runtime all read and write the same buffer without conversion.
/// <see cref="TensorDatatype.Bytes"/> tensors keep one byte array per element in <see cref="BytesData"/>.
/// </remarks>
public sealed class InferTensor
{
    public required string Name { get; init; }

    public required TensorDatatype Datatype { get; init; }

    public required long[] Shape { get; init; }

    /// <summary>Raw little-endian element bytes (empty for BYTES tensors).</summary>
    public ReadOnlyMemory<byte> Data { get; init; }

    /// <summary>Elements of a BYTES tensor; null otherwise.</summary>
    public IReadOnlyList<byte[]>? BytesData { get; init; }

    /// <summary>Tensor-level parameters (<c>binary_data_size</c>, <c>binary_data</c>, ...).</summary>
    public Dictionary<string, object>? Parameters { get; set; }

    /// <summary>The number of elements the shape describes; throws on overflow or a negative dim.</summary>
    public long ElementCount => ShapeMath.ElementCount(Shape);

    /// <summary>The number of elements actually held.</summary>
    public long DataElementCount => Datatype == TensorDatatype.Bytes
        ? BytesData?.Count ?? 0
        : Data.Length / Datatype.ElementSize();

    /// <summary>Reads the elements as <typeparamref name="T"/> (which must match the datatype's size).</summary>
    public ReadOnlySpan<T> AsSpan<T>() where T : unmanaged => MemoryMarshal.Cast<byte, T>(Data.Span);

    public static InferTensor Create<T>(string name, long[] shape, T[] values) where T : unmanaged
    {
        var datatype = DatatypeOf<T>();
        return new InferTensor
        {
            Name = name,
            Datatype = datatype,
            Shape = shape,
            Data = MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
        };
    }

    public static InferTensor CreateBytes(string name, long[] shape, IReadOnlyList<byte[]> values) => new()
    {
        Name = name,
        Datatype = TensorDatatype.Bytes,
        Shape = shape,
        BytesData = values,
    };

    public static TensorDatatype DatatypeOf<T>() where T : unmanaged => typeof(T) switch
    {
        var t when t == typeof(bool) => TensorDatatype.Bool,
        var t when t == typeof(byte) => TensorDatatype.Uint8,
        var t when t == typeof(ushort) => TensorDatatype.Uint16,
        var t when t == typeof(uint) => TensorDatatype.Uint32,
        var t when t == typeof(ulong) => TensorDatatype.Uint64,
        var t when t == typeof(sbyte) => TensorDatatype.Int8,
        var t when t == typeof(short) => TensorDatatype.Int16,
        var t when t == typeof(int) => TensorDatatype.Int32,
        var t when t == typeof(long) => TensorDatatype.Int64,
        var t when t == typeof(Half) => TensorDatatype.Fp16,
        var t when t == typeof(float) => TensorDatatype.Fp32,
        var t when t == typeof(double) => TensorDatatype.Fp64,
        _ => throw new ArgumentException($"{typeof(T)} has no OIP datatype"),
    };
}

/// <summary>Checked arithmetic on tensor shapes.</summary>
public static class ShapeMath
{
    /// <summary>Product of the dims; throws <see cref="InferenceException"/> on a negative dim or overflow.</summary>
    public static long ElementCount(ReadOnlySpan<long> shape)
    {
        long count = 1;
        foreach (var dim in shape)
        {
            if (dim < 0)
            {
                throw new InferenceException(InferenceError.BadRequest, $"shape dim {dim} is negative");
            }

            try
            {
                count = checked(count * dim);
            }
            catch (OverflowException)
            {
                throw new InferenceException(InferenceError.BadRequest, $"shape [{string.Join(",", shape.ToArray())}] overflows the element count");
            }
        }

        return count;
    }
}
