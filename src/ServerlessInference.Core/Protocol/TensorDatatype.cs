namespace ServerlessInference.Protocol;

/// <summary>The tensor datatypes of the KServe Open Inference Protocol v2.</summary>
public enum TensorDatatype : byte
{
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bytes,
}

/// <summary>Names and element sizes of <see cref="TensorDatatype"/> as the protocol spells them.</summary>
public static class TensorDatatypes
{
    private static readonly string[] s_names =
        ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"];

    private static readonly int[] s_sizes = [1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 0];

    /// <summary>The protocol name, e.g. <c>FP32</c>.</summary>
    public static string Name(this TensorDatatype datatype) => s_names[(int)datatype];

    /// <summary>Bytes per element; 0 for <see cref="TensorDatatype.Bytes"/>, whose elements vary in length.</summary>
    public static int ElementSize(this TensorDatatype datatype) => s_sizes[(int)datatype];

    public static bool TryParse(ReadOnlySpan<char> name, out TensorDatatype datatype)
    {
        for (var i = 0; i < s_names.Length; i++)
        {
            if (name.Equals(s_names[i], StringComparison.OrdinalIgnoreCase))
            {
                datatype = (TensorDatatype)i;
                return true;
            }
        }

        datatype = default;
        return false;
    }

    public static TensorDatatype Parse(string name) =>
        TryParse(name, out var datatype) ? datatype : throw new InferenceException(InferenceError.BadRequest, $"unknown datatype '{name}'");

    public static IReadOnlyList<string> AllNames => s_names;
}
