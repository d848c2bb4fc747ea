using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace ServerlessInference.Onnx;

/// <summary>Small builders for ONNX protobuf messages, for the demo models and the CUDA probe.</summary>
internal static class OnnxModelProtos
{
    /// <summary>The IR version and default-domain opset every generated model declares (both load in ORT 1.31).</summary>
    public const long IrVersion = 10;
    public const long Opset = 21;

    /// <summary>A tensor value description. A null dim is the symbolic batch dim <c>N</c>; a negative dim is a
    /// symbolic dim of its own (<c>d1</c>, <c>d2</c>, ... by position).</summary>
    public static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType elementType, params long?[] dims)
    {
        var shape = new TensorShapeProto();
        for (var i = 0; i < dims.Length; i++)
        {
            shape.Dim.Add(dims[i] switch
            {
                null => new TensorShapeProto.Types.Dimension { DimParam = "N" },
                < 0 => new TensorShapeProto.Types.Dimension { DimParam = $"d{i}" },
                { } value => new TensorShapeProto.Types.Dimension { DimValue = value },
            });
        }

        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)elementType, Shape = shape } },
        };
    }

    /// <summary>An FP32 initializer stored as raw little-endian bytes.</summary>
    public static TensorProto FloatTensor(string name, ReadOnlySpan<float> values, params long[] dims)
    {
        var tensor = new TensorProto
        {
            Name = name,
            DataType = (int)TensorProto.Types.DataType.Float,
            RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values)),
        };
        tensor.Dims.Add(dims);
        return tensor;
    }

    public static NodeProto Node(string opType, string[] inputs, string[] outputs, string? name = null)
    {
        var node = new NodeProto { OpType = opType, Name = name ?? outputs[0] };
        node.Input.Add(inputs);
        node.Output.Add(outputs);
        return node;
    }

    public static byte[] Model(GraphProto graph)
    {
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "ServerlessInference",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        return model.ToByteArray();
    }

    /// <summary>y = x + x over FP32 [N, 4]: runs on every execution provider, used to probe CUDA.</summary>
    public static byte[] ProbeModel()
    {
        var graph = new GraphProto { Name = "probe" };
        graph.Input.Add(ValueInfo("x", TensorProto.Types.DataType.Float, null, 4));
        graph.Output.Add(ValueInfo("y", TensorProto.Types.DataType.Float, null, 4));
        graph.Node.Add(Node("Add", ["x", "x"], ["y"]));
        return Model(graph);
    }
}
