using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace ServerlessInference.Onnx.Quantization;

/// <summary>How a quantized MatMul is written into the graph.</summary>
public enum Int8Form
{
    /// <summary>ONNX Runtime's dynamic quantization: <c>DynamicQuantizeLinear</c> (the activation, per tensor, UINT8)
    /// + <c>MatMulInteger</c> (INT8 weights) + <c>Cast</c> + <c>Mul</c> by activation scale × weight scales. ONNX Runtime
    /// fuses the four into one integer kernel on the CPU.</summary>
    Dynamic,

    /// <summary>Weight-only: <c>DequantizeLinear</c> (INT8 weights, per-axis scales) feeding the original float
    /// <c>MatMul</c>. A quarter of the weight bytes, but the float product is unchanged, plus a dequantize per run.</summary>
    WeightOnly,
}

/// <summary>What <see cref="Int8WeightQuantizer.Quantize"/> changed.</summary>
/// <param name="QuantizedWeights">MatMul and Gemm weight initializers now stored as INT8.</param>
/// <param name="SkippedNodes">MatMul/Gemm nodes left in FP32, with the reason (an activation as the weight, a Gemm
/// with transA or alpha/beta other than 1, a weight that is not a 2-D FP32 initializer, a weight other nodes read).</param>
/// <param name="FloatWeightBytes">Bytes of the FP32 weights that were quantized.</param>
/// <param name="Int8WeightBytes">Bytes of their INT8 replacements and scales.</param>
public sealed record QuantizationReport(int QuantizedWeights, IReadOnlyList<string> SkippedNodes, long FloatWeightBytes, long Int8WeightBytes);

/// <summary>Quantizes the weights of a model's MatMul (and Gemm) nodes to INT8, per output channel, symmetric.</summary>
/// <remarks>
/// <para>A weight B [K, N] of <c>Y = A·B</c> has output channels N (its columns). Each column n gets its own scale
/// <c>s[n] = max|B[:, n]| / 127</c> and zero point 0 (symmetric), and <c>q = clamp(round(B / s[n]), -127, 127)</c> (-128 is
/// never used, so the range is symmetric). Activations are not quantized ahead of time: in <see cref="Int8Form.Dynamic"/>
/// ONNX Runtime quantizes them per tensor, asymmetric UINT8, on every run; in <see cref="Int8Form.WeightOnly"/> they stay
/// FP32.</para>
/// <para>Only the graph changes: inputs, outputs, metadata (a text-generation model's tokenizer) and every other node
/// are kept. A Gemm <c>Y = A·B' + C</c> (<c>B' = Bᵀ</c> when transB) with transA 0 and alpha, beta 1 becomes the
/// quantized product plus an Add of C. Pure function of its input: the same model gives the same bytes.</para>
/// </remarks>
public static class Int8WeightQuantizer
{
    /// <summary>The form <c>models quantize</c> writes: measured faster on this CPU (bench/README.md, "Quantized variants").</summary>
    public const Int8Form DefaultForm = Int8Form.Dynamic;

    private const int MinimumOpset = 13; // DequantizeLinear's axis attribute (Dynamic needs only 11)

    /// <summary>The quantized model's bytes and what changed.</summary>
    /// <exception cref="InvalidDataException">The bytes are not an ONNX model, its default-domain opset is below 13, or it
    /// has no MatMul or Gemm with an FP32 weight initializer to quantize.</exception>
    public static (byte[] Model, QuantizationReport Report) Quantize(byte[] model, Int8Form form = DefaultForm)
    {
        ArgumentNullException.ThrowIfNull(model);
        ModelProto proto;
        try
        {
            proto = ModelProto.Parser.ParseFrom(model);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new InvalidDataException($"not an ONNX model: {ex.Message}", ex);
        }

        if (proto.Graph is null)
        {
            throw new InvalidDataException("not an ONNX model: it has no graph");
        }

        var opset = proto.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(0).Max();
        if (opset < MinimumOpset)
        {
            throw new InvalidDataException($"the model imports opset {opset} of the default domain; quantizing needs at least {MinimumOpset}");
        }

        var report = new GraphRewrite(proto.Graph, form).Run();
        if (report.QuantizedWeights == 0)
        {
            var why = report.SkippedNodes.Count == 0 ? "it has no MatMul or Gemm node" : string.Join("; ", report.SkippedNodes);
            throw new InvalidDataException($"nothing to quantize: {why}");
        }

        return (proto.ToByteArray(), report);
    }

    /// <summary>Per-column symmetric INT8 of a row-major [rows, columns] matrix: the codes and one scale per column.</summary>
    public static (sbyte[] Codes, float[] Scales) QuantizeColumns(ReadOnlySpan<float> weights, int rows, int columns)
    {
        var scales = new float[columns];
        for (var r = 0; r < rows; r++)
        {
            var row = weights.Slice(r * columns, columns);
            for (var c = 0; c < columns; c++)
            {
                scales[c] = Math.Max(scales[c], Math.Abs(row[c]));
            }
        }

        for (var c = 0; c < columns; c++)
        {
            // An all-zero column keeps scale 1 (its codes are 0 either way); a zero scale would divide by zero in DequantizeLinear.
            scales[c] = scales[c] > 0 ? scales[c] / 127f : 1f;
        }

        var codes = new sbyte[weights.Length];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                var q = MathF.Round(weights[(r * columns) + c] / scales[c], MidpointRounding.ToEven);
                codes[(r * columns) + c] = (sbyte)Math.Clamp(q, -127f, 127f);
            }
        }

        return (codes, scales);
    }

    /// <summary>The weights' zero point in <see cref="Int8Form.Dynamic"/>: the symmetric INT8 codes are stored as UINT8
    /// plus 128. ONNX Runtime's UINT8 × INT8 kernel in its AVX2 form adds pairs of products in saturating 16-bit lanes
    /// (255 · 127 · 2 > 32767), which cost a logit error 30 times that of the weights alone here (measured with ONNX
    /// Runtime 1.31 on this VM, although its CPU also reports AVX-512 VNNI); UINT8 × UINT8 takes another path without that saturation, and the values are the same symmetric ones.</summary>
    private const string WeightZeroPoint = "int8/weight_zero_point";

    private sealed class GraphRewrite(GraphProto graph, Int8Form form)
    {
        private readonly Dictionary<string, TensorProto> _initializers = graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        private readonly List<string> _skipped = [];
        private readonly List<TensorProto> _added = [];
        private int _quantized;
        private long _floatBytes;
        private long _int8Bytes;

        public QuantizationReport Run()
        {
            if (form == Int8Form.Dynamic)
            {
                var zero = new TensorProto { Name = WeightZeroPoint, DataType = (int)DataType.Uint8, RawData = ByteString.CopyFrom([128]) };
                _added.Add(zero);
            }

            // A weight read by more than one node (tied embeddings, a Gather) is left alone: it must stay FP32 for the others.
            var readers = graph.Node.SelectMany(n => n.Input).Where(i => i.Length > 0)
                .GroupBy(i => i, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
            var rewritten = new List<NodeProto>(graph.Node.Count);
            var replaced = new HashSet<string>(StringComparer.Ordinal);
            foreach (var node in graph.Node)
            {
                var nodes = node.Domain is "" or "ai.onnx" ? node.OpType switch
                {
                    "MatMul" => RewriteMatMul(node, readers, replaced),
                    "Gemm" => RewriteGemm(node, readers, replaced),
                    _ => null,
                } : null;
                rewritten.AddRange(nodes ?? [node]);
            }

            graph.Node.Clear();
            graph.Node.Add(rewritten);
            var kept = graph.Initializer.Where(t => !replaced.Contains(t.Name)).ToList();
            graph.Initializer.Clear();
            graph.Initializer.Add(kept);
            graph.Initializer.Add(_added);
            // Stale shape hints of removed FP32 weights would contradict the new initializers.
            var infos = graph.ValueInfo.Where(v => !replaced.Contains(v.Name)).ToList();
            graph.ValueInfo.Clear();
            graph.ValueInfo.Add(infos);
            return new QuantizationReport(_quantized, _skipped, _floatBytes, _int8Bytes);
        }

        private List<NodeProto>? RewriteMatMul(NodeProto node, Dictionary<string, int> readers, HashSet<string> replaced)
        {
            if (Weight(node, node.Input.Count > 1 ? node.Input[1] : "", readers) is not { } weight)
            {
                return null;
            }

            var (rows, columns) = ((int)weight.Dims[0], (int)weight.Dims[1]);
            var values = FloatValues(weight);
            replaced.Add(weight.Name);
            return Product(node, node.Input[0], weight.Name, values, rows, columns, node.Output[0]);
        }

        private List<NodeProto>? RewriteGemm(NodeProto node, Dictionary<string, int> readers, HashSet<string> replaced)
        {
            long transA = 0, transB = 0;
            float alpha = 1, beta = 1;
            foreach (var attribute in node.Attribute)
            {
                switch (attribute.Name)
                {
                    case "transA": transA = attribute.I; break;
                    case "transB": transB = attribute.I; break;
                    case "alpha": alpha = attribute.F; break;
                    case "beta": beta = attribute.F; break;
                }
            }

            if (transA != 0 || alpha != 1 || beta != 1)
            {
                _skipped.Add($"Gemm '{node.Name}': transA, alpha or beta other than 0, 1, 1");
                return null;
            }

            if (Weight(node, node.Input[1], readers) is not { } weight)
            {
                return null;
            }

            int rows = (int)weight.Dims[0], columns = (int)weight.Dims[1];
            var values = FloatValues(weight);
            if (transB != 0)
            {
                // Y = A·Bᵀ: store Bᵀ [K, N] so the output channels are its columns, as for MatMul.
                var transposed = new float[values.Length];
                for (var r = 0; r < rows; r++)
                {
                    for (var c = 0; c < columns; c++)
                    {
                        transposed[(c * rows) + r] = values[(r * columns) + c];
                    }
                }

                (values, rows, columns) = (transposed, columns, rows);
            }

            replaced.Add(weight.Name);
            var hasBias = node.Input.Count > 2 && node.Input[2].Length > 0;
            var product = hasBias ? node.Output[0] + "/int8_product" : node.Output[0];
            var nodes = Product(node, node.Input[0], weight.Name, values, rows, columns, product);
            if (hasBias)
            {
                nodes.Add(OnnxModelProtos.Node("Add", [product, node.Input[2]], [node.Output[0]], node.Name + "/int8_bias"));
            }

            return nodes;
        }

        private TensorProto? Weight(NodeProto node, string name, Dictionary<string, int> readers)
        {
            if (!_initializers.TryGetValue(name, out var weight))
            {
                _skipped.Add($"{node.OpType} '{node.Name}': its weight is not an initializer");
                return null;
            }

            if (weight.DataType != (int)DataType.Float || weight.Dims.Count != 2 || weight.DataLocation == TensorProto.Types.DataLocation.External)
            {
                _skipped.Add($"{node.OpType} '{node.Name}': weight '{name}' is not a 2-D FP32 tensor held in the file");
                return null;
            }

            if (readers.GetValueOrDefault(name) > 1)
            {
                _skipped.Add($"{node.OpType} '{node.Name}': weight '{name}' is read by other nodes too");
                return null;
            }

            return weight;
        }

        private List<NodeProto> Product(NodeProto node, string activation, string weightName, float[] values, int rows, int columns, string output)
        {
            var (codes, scales) = QuantizeColumns(values, rows, columns);
            var p = weightName + "/int8";
            var quantized = form == Int8Form.WeightOnly
                ? new TensorProto { Name = p, DataType = (int)DataType.Int8, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(codes.AsSpan())) }
                : new TensorProto { Name = p, DataType = (int)DataType.Uint8, RawData = ByteString.CopyFrom(Offset(codes)) };
            quantized.Dims.Add([rows, columns]);
            _added.Add(quantized);
            _added.Add(OnnxModelProtos.FloatTensor(p + "/scale", scales, columns));
            _quantized++;
            _floatBytes += values.Length * sizeof(float);
            _int8Bytes += codes.Length + (scales.Length * sizeof(float));
            var n = node.Name.Length > 0 ? node.Name : output;
            if (form == Int8Form.WeightOnly)
            {
                var zero = new TensorProto { Name = p + "/zero_point", DataType = (int)DataType.Int8, RawData = ByteString.CopyFrom(new byte[columns]) };
                zero.Dims.Add(columns);
                _added.Add(zero);
                var dequantize = OnnxModelProtos.Node("DequantizeLinear", [p, p + "/scale", p + "/zero_point"], [p + "/float"], n + "/int8_dequantize");
                dequantize.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
                _int8Bytes += columns;
                return [dequantize, OnnxModelProtos.Node("MatMul", [activation, p + "/float"], [output], n)];
            }

            // The pattern ONNX Runtime's own dynamic quantizer writes, which its graph optimizer fuses into one kernel.
            var a = output + "/int8_activation";
            return
            [
                OnnxModelProtos.Node("DynamicQuantizeLinear", [activation], [a, a + "_scale", a + "_zero_point"], n + "/int8_quantize"),
                OnnxModelProtos.Node("MatMulInteger", [a, p, a + "_zero_point", WeightZeroPoint], [output + "/int32"], n + "/int8_matmul"),
                CastToFloat(output + "/int32", output + "/int32_float", n + "/int8_cast"),
                OnnxModelProtos.Node("Mul", [a + "_scale", p + "/scale"], [output + "/int8_scale"], n + "/int8_scales"),
                OnnxModelProtos.Node("Mul", [output + "/int32_float", output + "/int8_scale"], [output], n),
            ];
        }

        /// <summary>The symmetric codes stored as UINT8 around zero point 128 (see <see cref="WeightZeroPoint"/>).</summary>
        private static byte[] Offset(sbyte[] codes)
        {
            var bytes = new byte[codes.Length];
            for (var i = 0; i < codes.Length; i++)
            {
                bytes[i] = (byte)(codes[i] + 128);
            }

            return bytes;
        }

        private static NodeProto CastToFloat(string input, string output, string name)
        {
            var cast = OnnxModelProtos.Node("Cast", [input], [output], name);
            cast.Attribute.Add(new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)DataType.Float });
            return cast;
        }

        private static float[] FloatValues(TensorProto tensor)
        {
            if (!tensor.RawData.IsEmpty)
            {
                return MemoryMarshal.Cast<byte, float>(tensor.RawData.Span).ToArray();
            }

            return [.. tensor.FloatData];
        }
    }
}
