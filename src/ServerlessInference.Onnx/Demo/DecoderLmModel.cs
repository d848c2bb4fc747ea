using Google.Protobuf;
using Onnx;
using ServerlessInference.Generation;
using ServerlessInference.Models;
using DataType = Onnx.TensorProto.Types.DataType;

namespace ServerlessInference.Onnx.Demo;

/// <summary>The shape of a demo decoder-only language model.</summary>
/// <param name="Name">Model name in the store.</param>
/// <param name="VocabularySize">Ids, the last being the end token.</param>
/// <param name="Hidden">Width of the residual stream (<c>Heads * HeadDim</c>).</param>
/// <param name="Layers">Transformer blocks.</param>
/// <param name="Heads">Attention heads per block.</param>
/// <param name="FeedForward">Width of each block's ReLU layer.</param>
/// <param name="ContextLength">Learned positions, and the manifest's context length.</param>
/// <param name="Seed">The weights' and the tokenizer corpus' seed.</param>
public sealed record DecoderLmConfig(string Name, int VocabularySize, int Hidden, int Layers, int Heads, int FeedForward, int ContextLength, int Seed)
{
    public int HeadDim => Hidden / Heads;

    public int EndOfTextId => VocabularySize - 1;

    /// <summary>Blocks the graph runs: the first <see cref="KeptLayers"/> of the <see cref="Layers"/> whose weights are
    /// drawn. A draft model keeps the target's first blocks, embeddings, final norm and head (the same weights: the same
    /// seed and the same draws), so it agrees with the target often at a fraction of the cost.</summary>
    public int? KeptLayers { get; init; }

    public int GraphLayers => KeptLayers ?? Layers;

    /// <summary>Factor on the output projections (<c>wo</c>, <c>w2</c>, <c>b2</c>) of every block after the first. Below
    /// 1 the later blocks refine the residual stream rather than overturn it, as in trained LLMs, so the first block
    /// alone (a draft) picks the same next token often. The draws are unchanged; 1 (the default) leaves the bytes as
    /// they were.</summary>
    public double LaterBlockScale { get; init; } = 1.0;

    /// <summary>ALiBi-style recency bias: each attention score gets <c>-RecencySlope × (query column − key column)</c>.
    /// Large enough, attention is local, so the next token depends on the last few tokens only and a span that recurs
    /// is continued as it was the first time (a copying tendency). 0 (the default) adds no bias.</summary>
    public double RecencySlope { get; init; }

    /// <summary>Scale of the learned position embedding <c>wpe</c>; 0 makes the model position-free (with
    /// <see cref="RecencySlope"/> it still knows order), so a recurring span is continued the same wherever it
    /// stands.</summary>
    public double PositionEmbeddingScale { get; init; } = 0.3;

    /// <summary>Bytes of KV cache one token holds: key and value, every layer, FP32.</summary>
    public long KvBytesPerToken => 2L * GraphLayers * Hidden * sizeof(float);
}

/// <summary>A GPT-2-like decoder-only language model built in code, with Hugging Face Optimum's KV-cache inputs and
/// outputs, and its byte-level BPE tokenizer (<see cref="DemoTokenizer"/>) in the model's metadata properties.</summary>
/// <remarks>
/// <para>Inputs: <c>input_ids</c> INT64 [B,S], <c>attention_mask</c> INT64 [B,P+S] (1 = real token, 0 = left padding),
/// <c>position_ids</c> INT64 [B,S], and <c>past_key_values.{i}.key|value</c> FP32 [B,H,P,Dh] (P may be 0). Outputs:
/// <c>logits</c> FP32 [B,S,V] and <c>present.{i}.key|value</c> FP32 [B,H,P+S,Dh].</para>
/// <para>The network: token embedding <c>wte</c> plus learned position embedding <c>wpe</c>; per block
/// <c>x += Wo·attn(LN1(x))</c> and <c>x += W2·relu(W1·LN2(x) + b1) + b2</c>; then <c>logits = LN_f(x)·lm_head</c>.
/// Attention is causal and masked by <c>attention_mask</c> with a finite bias (-1e9): the past length is taken from
/// the shapes (mask length minus input length), a query at absolute column <c>P+s</c> sees keys
/// <c>t ≤ P+s</c> whose mask is 1; with <see cref="DecoderLmConfig.RecencySlope"/> each open score also gets
/// <c>-slope × (P+s − t)</c>. LayerNormalization has epsilon 1e-5.</para>
/// <para>Initializer names (the tests' reference forward pass reads them): <c>wte</c> [V,D], <c>wpe</c> [C,D],
/// <c>l{i}.ln1.g|b</c>, <c>l{i}.wq|wk|wv|wo</c> [D,D], <c>l{i}.ln2.g|b</c>, <c>l{i}.w1</c> [D,F], <c>l{i}.b1</c>,
/// <c>l{i}.w2</c> [F,D], <c>l{i}.b2</c>, <c>lnf.g|b</c>, <c>lm_head</c> [D,V]. Weights are uniform from SplitMix64
/// with the config's seed, scaled so logits have a spread of a few units (clear top-1 margins, varied greedy text).
/// IR 10, opset 21; the same config gives the same bytes.</para>
/// </remarks>
public static class DecoderLmModel
{
    public const string Version = "1";

    /// <summary>Small enough that tests run in seconds: V 384, D 32, 2 layers, 2 heads, context 256 (about 0.3 MB).</summary>
    public static DecoderLmConfig TinyLm { get; } = new("tiny-lm", VocabularySize: 384, Hidden: 32, Layers: 2, Heads: 2, FeedForward: 128, ContextLength: 256, Seed: 20261204);

    /// <summary>A decode step weight-bound on a CPU: V 2048, D 512, 4 layers, 8 heads, context 1024 (about 60 MB).</summary>
    public static DecoderLmConfig LmBench { get; } = new("lm-bench", VocabularySize: 2048, Hidden: 512, Layers: 4, Heads: 8, FeedForward: 2048, ContextLength: 1024, Seed: 20261205);

    /// <summary>lm-bench's draft for speculative decoding: its first block with its embeddings, final norm and head.</summary>
    public static DecoderLmConfig LmBenchDraft { get; } = LmBench with { Name = "lm-bench-draft", KeptLayers = 1 };

    /// <summary>The speculative-decoding demo target: lm-bench's shape with 8 blocks whose later seven are scaled down
    /// to refinements (<see cref="DecoderLmConfig.LaterBlockScale"/>), local attention
    /// (<see cref="DecoderLmConfig.RecencySlope"/>) and no absolute positions, so its first-block draft agrees with it
    /// often and it continues a span it has seen before. About 110 MB.</summary>
    public static DecoderLmConfig LmSpec { get; } = LmBench with
    {
        Name = "lm-spec",
        Layers = 8,
        LaterBlockScale = 0.02,
        RecencySlope = 2,
        PositionEmbeddingScale = 0,
    };

    /// <summary>lm-spec's draft: its first block of eight with its embeddings, final norm and head.</summary>
    public static DecoderLmConfig LmSpecDraft { get; } = LmSpec with { Name = "lm-spec-draft", KeptLayers = 1 };

    /// <summary>tiny-lm's first block alone, as a draft in tests.</summary>
    public static DecoderLmConfig TinyLmDraft { get; } = TinyLm with { Name = "tiny-lm-draft", KeptLayers = 1 };

    /// <summary>The manifest of <paramref name="target"/> with speculative decoding by <paramref name="draft"/>.</summary>
    public static ModelManifest SpeculativeManifest(DecoderLmConfig target, DecoderLmConfig draft, int k = 4)
    {
        var manifest = Manifest(target);
        return manifest with { Generation = manifest.Generation! with { Speculative = new SpeculativeSpec { Draft = draft.Name, K = k } } };
    }

    /// <summary>The model's bytes, tokenizer files included.</summary>
    public static byte[] Build(DecoderLmConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Hidden % config.Heads != 0)
        {
            throw new ArgumentException("hidden must be a multiple of heads", nameof(config));
        }

        var (vocabJson, mergesText) = DemoTokenizer.Build(config.VocabularySize, config.Seed);
        var graph = new GraphBuilder(config);
        var model = new ModelProto
        {
            IrVersion = OnnxModelProtos.IrVersion,
            ProducerName = "ServerlessInference",
            Graph = graph.Build(),
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OnnxModelProtos.Opset });
        model.MetadataProps.Add(new StringStringEntryProto { Key = DemoTokenizer.VocabFile, Value = vocabJson });
        model.MetadataProps.Add(new StringStringEntryProto { Key = DemoTokenizer.MergesFile, Value = mergesText });
        return model.ToByteArray();
    }

    /// <summary>The manifest of <paramref name="config"/>'s model. Leave <paramref name="sha256"/> and
    /// <paramref name="sizeBytes"/> empty for <see cref="IModelStore.UploadAsync"/>, which computes them.</summary>
    public static ModelManifest Manifest(DecoderLmConfig config, string sha256 = "", long sizeBytes = 0)
    {
        ArgumentNullException.ThrowIfNull(config);
        return new ModelManifest
        {
            Name = config.Name,
            Version = Version,
            Sha256 = sha256,
            SizeBytes = sizeBytes,
            Inputs = [],
            Outputs = [],
            Task = ModelTasks.TextGeneration,
            Generation = new GenerationSpec
            {
                Tokenizer = DemoTokenizer.Spec(config.VocabularySize),
                EosTokenIds = [config.EndOfTextId],
                ContextLength = config.ContextLength,
                NumLayers = config.GraphLayers,
                NumHeads = config.Heads,
                HeadDim = config.HeadDim,
                ChatTemplate = new ChatTemplate
                {
                    Message = "{role}: {content}\n",
                    GenerationPrompt = "assistant:",
                },
            },
        };
    }

    private sealed class GraphBuilder(DecoderLmConfig config)
    {
        private readonly GraphProto _graph = new() { Name = config.Name };
        private DemoRandom _random = new((ulong)config.Seed);
        private bool _emit = true;

        public GraphProto Build()
        {
            int d = config.Hidden, h = config.Heads, dh = config.HeadDim, v = config.VocabularySize;
            _graph.Input.Add(Value("input_ids", DataType.Int64, "batch_size", "sequence_length"));
            _graph.Input.Add(Value("attention_mask", DataType.Int64, "batch_size", "total_sequence_length"));
            _graph.Input.Add(Value("position_ids", DataType.Int64, "batch_size", "sequence_length"));
            for (var i = 0; i < config.GraphLayers; i++)
            {
                foreach (var kind in new[] { "key", "value" })
                {
                    _graph.Input.Add(Value($"past_key_values.{i}.{kind}", DataType.Float, "batch_size", h, "past_sequence_length", dh));
                }
            }

            _graph.Output.Add(Value("logits", DataType.Float, "batch_size", "sequence_length", v));
            for (var i = 0; i < config.GraphLayers; i++)
            {
                foreach (var kind in new[] { "key", "value" })
                {
                    _graph.Output.Add(Value($"present.{i}.{kind}", DataType.Float, "batch_size", h, "total_sequence_length", dh));
                }
            }

            // Constants.
            Int64("c_one", [], 1);
            Int64("c_zero", [], 0);
            Int64("c_axes0", [1], 0);
            Int64("c_axes1", [1], 1);
            Int64("c_axes12", [2], 1, 2);
            Int64("c_heads_shape", [4], 0, 0, h, dh);
            Int64("c_hidden_shape", [3], 0, 0, d);
            Float("c_bias_masked", [], -1e9f);
            Float("c_scale", [], (float)(1.0 / Math.Sqrt(dh)));

            // Mask bias [B,1,S,T]: causal over absolute columns, and the attention mask.
            Node("Shape", ["input_ids"], ["s_len1"], ("start", 1L), ("end", 2L));
            Node("Shape", ["attention_mask"], ["t_len1"], ("start", 1L), ("end", 2L));
            Node("Sub", ["t_len1", "s_len1"], ["p_len1"]);
            Node("Squeeze", ["t_len1"], ["t_len"]);
            Node("Squeeze", ["p_len1"], ["p_len"]);
            Node("Range", ["p_len", "t_len", "c_one"], ["rows"]);
            Node("Range", ["c_zero", "t_len", "c_one"], ["cols"]);
            Node("Unsqueeze", ["rows", "c_axes1"], ["rows2"]);
            Node("Unsqueeze", ["cols", "c_axes0"], ["cols2"]);
            Node("LessOrEqual", ["cols2", "rows2"], ["causal"]);
            Node("Cast", ["attention_mask"], ["mask_bool"], ("to", (long)DataType.Bool));
            Node("Unsqueeze", ["mask_bool", "c_axes12"], ["mask4"]);
            Node("And", ["causal", "mask4"], ["allowed"]);
            if (config.RecencySlope > 0)
            {
                Float("c_recency", [], (float)-config.RecencySlope);
                Node("Sub", ["rows2", "cols2"], ["distance"]);
                Node("Cast", ["distance"], ["distance_f"], ("to", (long)DataType.Float));
                Node("Mul", ["distance_f", "c_recency"], ["recency"]);
                Node("Where", ["allowed", "recency", "c_bias_masked"], ["bias"]);
            }
            else
            {
                Float("c_bias_open", [], 0f);
                Node("Where", ["allowed", "c_bias_open", "c_bias_masked"], ["bias"]);
            }

            // Embeddings.
            Weights("wte", 1.0, v, d);
            Weights("wpe", config.PositionEmbeddingScale, config.ContextLength, d);
            Node("Gather", ["wte", "input_ids"], ["tok_emb"]);
            Node("Gather", ["wpe", "position_ids"], ["pos_emb"]);
            Node("Add", ["tok_emb", "pos_emb"], ["x0"]);

            var x = "x0";
            var unit = Math.Sqrt(3.0 / d);
            for (var i = 0; i < config.Layers; i++)
            {
                // Blocks past the kept ones still draw their weights, so the final norm and head match the full model's.
                _emit = i < config.GraphLayers;
                var p = $"l{i}.";
                var output = i == 0 ? 1.0 : config.LaterBlockScale;
                LayerNorm(p + "ln1", x, p + "h");
                Weights(p + "wq", 2 * unit, d, d);
                Weights(p + "wk", 2 * unit, d, d);
                Weights(p + "wv", unit, d, d);
                Weights(p + "wo", output * unit, d, d);
                foreach (var (w, name) in new[] { ("wq", "q"), ("wk", "k"), ("wv", "v") })
                {
                    Node("MatMul", [p + "h", p + w], [p + name + "_flat"]);
                    Node("Reshape", [p + name + "_flat", "c_heads_shape"], [p + name + "_heads"]);
                    Node("Transpose", [p + name + "_heads"], [p + name], ("perm", new long[] { 0, 2, 1, 3 }));
                }

                Node("Concat", [$"past_key_values.{i}.key", p + "k"], [$"present.{i}.key"], ("axis", 2L));
                Node("Concat", [$"past_key_values.{i}.value", p + "v"], [$"present.{i}.value"], ("axis", 2L));
                Node("Transpose", [$"present.{i}.key"], [p + "kt"], ("perm", new long[] { 0, 1, 3, 2 }));
                Node("MatMul", [p + "q", p + "kt"], [p + "scores_raw"]);
                Node("Mul", [p + "scores_raw", "c_scale"], [p + "scores_scaled"]);
                Node("Add", [p + "scores_scaled", "bias"], [p + "scores"]);
                Node("Softmax", [p + "scores"], [p + "probs"], ("axis", -1L));
                Node("MatMul", [p + "probs", $"present.{i}.value"], [p + "attn_heads"]);
                Node("Transpose", [p + "attn_heads"], [p + "attn_t"], ("perm", new long[] { 0, 2, 1, 3 }));
                Node("Reshape", [p + "attn_t", "c_hidden_shape"], [p + "attn"]);
                Node("MatMul", [p + "attn", p + "wo"], [p + "attn_out"]);
                Node("Add", [x, p + "attn_out"], [p + "x1"]);

                LayerNorm(p + "ln2", p + "x1", p + "h2");
                Weights(p + "w1", Math.Sqrt(6.0 / d), d, config.FeedForward);
                Weights(p + "b1", 0.05, config.FeedForward);
                Weights(p + "w2", output * 0.5 * Math.Sqrt(3.0 / config.FeedForward), config.FeedForward, d);
                Weights(p + "b2", output * 0.05, d);
                Node("MatMul", [p + "h2", p + "w1"], [p + "f_mm"]);
                Node("Add", [p + "f_mm", p + "b1"], [p + "f_pre"]);
                Node("Relu", [p + "f_pre"], [p + "f"]);
                Node("MatMul", [p + "f", p + "w2"], [p + "f2_mm"]);
                Node("Add", [p + "f2_mm", p + "b2"], [p + "f2"]);
                Node("Add", [p + "x1", p + "f2"], [p + "x2"]);
                if (_emit)
                {
                    x = p + "x2";
                }
            }

            _emit = true;

            LayerNorm("lnf", x, "final");
            // The end token's column is scaled down so greedy text runs for a while; sampling still reaches it.
            Weights("lm_head", 4 * Math.Sqrt(3.0 / d), d, v, column: (v - 1, 0.25));
            Node("MatMul", ["final", "lm_head"], ["logits"]);
            return _graph;
        }

        private void LayerNorm(string prefix, string input, string output)
        {
            var gain = new float[config.Hidden];
            var bias = new float[config.Hidden];
            for (var j = 0; j < gain.Length; j++)
            {
                gain[j] = (float)(1.0 + (0.1 * _random.NextSigned()));
                bias[j] = (float)(0.05 * _random.NextSigned());
            }

            if (!_emit)
            {
                return;
            }

            _graph.Initializer.Add(OnnxModelProtos.FloatTensor(prefix + ".g", gain, config.Hidden));
            _graph.Initializer.Add(OnnxModelProtos.FloatTensor(prefix + ".b", bias, config.Hidden));
            Node("LayerNormalization", [input, prefix + ".g", prefix + ".b"], [output], ("axis", -1L), ("epsilon", 1e-5f));
        }

        private void Weights(string name, double scale, params int[] dims) => Weights(name, scale, dims[0], dims.Length > 1 ? dims[1] : -1, null);

        private void Weights(string name, double scale, int rows, int columns, (int Index, double Scale)? column)
        {
            int[] dims = columns < 0 ? [rows] : [rows, columns];
            var count = 1;
            foreach (var dim in dims)
            {
                count = checked(count * dim);
            }

            var values = new float[count];
            for (var j = 0; j < values.Length; j++)
            {
                var factor = column is { } c && j % columns == c.Index ? c.Scale : 1.0;
                values[j] = (float)(_random.NextSigned() * scale * factor);
            }

            if (_emit)
            {
                _graph.Initializer.Add(OnnxModelProtos.FloatTensor(name, values, Array.ConvertAll(dims, dim => (long)dim)));
            }
        }

        private void Int64(string name, long[] dims, params long[] values)
        {
            var tensor = new TensorProto { Name = name, DataType = (int)DataType.Int64 };
            tensor.Dims.Add(dims);
            tensor.Int64Data.Add(values);
            _graph.Initializer.Add(tensor);
        }

        private void Float(string name, long[] dims, params float[] values)
        {
            var tensor = new TensorProto { Name = name, DataType = (int)DataType.Float };
            tensor.Dims.Add(dims);
            tensor.FloatData.Add(values);
            _graph.Initializer.Add(tensor);
        }

        private void Node(string opType, string[] inputs, string[] outputs, params (string Name, object Value)[] attributes)
        {
            if (!_emit)
            {
                return;
            }

            var node = OnnxModelProtos.Node(opType, inputs, outputs);
            foreach (var (name, value) in attributes)
            {
                var attribute = new AttributeProto { Name = name };
                switch (value)
                {
                    case long i:
                        attribute.Type = AttributeProto.Types.AttributeType.Int;
                        attribute.I = i;
                        break;
                    case float f:
                        attribute.Type = AttributeProto.Types.AttributeType.Float;
                        attribute.F = f;
                        break;
                    case long[] ints:
                        attribute.Type = AttributeProto.Types.AttributeType.Ints;
                        attribute.Ints.Add(ints);
                        break;
                    default:
                        throw new ArgumentException($"unsupported attribute {name}", nameof(attributes));
                }

                node.Attribute.Add(attribute);
            }

            _graph.Node.Add(node);
        }

        private static ValueInfoProto Value(string name, DataType elementType, params object[] dims)
        {
            var shape = new TensorShapeProto();
            foreach (var dim in dims)
            {
                shape.Dim.Add(dim is string symbol
                    ? new TensorShapeProto.Types.Dimension { DimParam = symbol }
                    : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(dim, System.Globalization.CultureInfo.InvariantCulture) });
            }

            return new ValueInfoProto
            {
                Name = name,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)elementType, Shape = shape } },
            };
        }
    }
}
