using Microsoft.ML.OnnxRuntime.Tensors;

namespace ServerlessInference.Onnx;

/// <summary>Maps the protocol's datatypes to ONNX Runtime element types and back.</summary>
internal static class TensorTypes
{
    public static TensorElementType ToElementType(TensorDatatype datatype) => datatype switch
    {
        TensorDatatype.Bool => TensorElementType.Bool,
        TensorDatatype.Uint8 => TensorElementType.UInt8,
        TensorDatatype.Uint16 => TensorElementType.UInt16,
        TensorDatatype.Uint32 => TensorElementType.UInt32,
        TensorDatatype.Uint64 => TensorElementType.UInt64,
        TensorDatatype.Int8 => TensorElementType.Int8,
        TensorDatatype.Int16 => TensorElementType.Int16,
        TensorDatatype.Int32 => TensorElementType.Int32,
        TensorDatatype.Int64 => TensorElementType.Int64,
        TensorDatatype.Fp16 => TensorElementType.Float16,
        TensorDatatype.Fp32 => TensorElementType.Float,
        TensorDatatype.Fp64 => TensorElementType.Double,
        TensorDatatype.Bytes => TensorElementType.String,
        _ => throw new ArgumentOutOfRangeException(nameof(datatype), datatype, "no ONNX element type"),
    };

    /// <summary>The protocol datatype of an ONNX element type; false for types the protocol cannot carry
    /// (bfloat16, complex, float8, 4-bit).</summary>
    public static bool TryToDatatype(TensorElementType elementType, out TensorDatatype datatype)
    {
        datatype = elementType switch
        {
            TensorElementType.Bool => TensorDatatype.Bool,
            TensorElementType.UInt8 => TensorDatatype.Uint8,
            TensorElementType.UInt16 => TensorDatatype.Uint16,
            TensorElementType.UInt32 => TensorDatatype.Uint32,
            TensorElementType.UInt64 => TensorDatatype.Uint64,
            TensorElementType.Int8 => TensorDatatype.Int8,
            TensorElementType.Int16 => TensorDatatype.Int16,
            TensorElementType.Int32 => TensorDatatype.Int32,
            TensorElementType.Int64 => TensorDatatype.Int64,
            TensorElementType.Float16 => TensorDatatype.Fp16,
            TensorElementType.Float => TensorDatatype.Fp32,
            TensorElementType.Double => TensorDatatype.Fp64,
            TensorElementType.String => TensorDatatype.Bytes,
            _ => (TensorDatatype)255,
        };
        return datatype != (TensorDatatype)255;
    }
}
