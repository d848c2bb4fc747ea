using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ServerlessInference.Generation;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx.Generation;

/// <summary>An ONNX Runtime session of a decoder with Optimum's KV-cache IO, and its geometry read from the IO:
/// <c>input_ids</c>, <c>attention_mask</c>, optional <c>position_ids</c>, <c>past_key_values.{i}.key|value</c>
/// [B,H,P,Dh] → <c>logits</c> [B,S,V], <c>present.{i}.key|value</c> [B,H,P+S,Dh] (FP32).</summary>
/// <remarks>Not thread-safe: one scheduler thread runs it. Owns the session.</remarks>
internal sealed class DecoderSession : IDisposable
{
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    private readonly RunOptions _runOptions = new();

    private DecoderSession(InferenceSession session, int layers, int heads, int headDim, int vocabularySize, bool hasPositionIds)
    {
        Session = session;
        Layers = layers;
        Heads = heads;
        HeadDim = headDim;
        VocabularySize = vocabularySize;
        HasPositionIds = hasPositionIds;
        var inputs = new List<string> { "input_ids", "attention_mask" };
        if (hasPositionIds)
        {
            inputs.Add("position_ids");
        }

        var outputs = new List<string> { "logits" };
        for (var i = 0; i < layers; i++)
        {
            inputs.Add($"past_key_values.{i}.key");
            inputs.Add($"past_key_values.{i}.value");
            outputs.Add($"present.{i}.key");
            outputs.Add($"present.{i}.value");
        }

        _inputNames = [.. inputs];
        _outputNames = [.. outputs];
    }

    public InferenceSession Session { get; }

    public int Layers { get; }

    public int Heads { get; }

    public int HeadDim { get; }

    public int VocabularySize { get; }

    public bool HasPositionIds { get; }

    /// <summary>Floats of one token's key (or value) in one layer: <c>Heads * HeadDim</c>.</summary>
    public int TokenWidth => Heads * HeadDim;

    /// <summary>Key and value, every layer, FP32.</summary>
    public long KvBytesPerToken => 2L * Layers * TokenWidth * sizeof(float);

    /// <summary>Reads the geometry from <paramref name="session"/> and checks it against <paramref name="spec"/>.</summary>
    /// <exception cref="InferenceException"><see cref="InferenceError.ModelFailure"/> naming every problem.</exception>
    public static DecoderSession Create(InferenceSession session, GenerationSpec spec, string modelKey)
    {
        var problems = new List<string>();
        var inputs = session.InputMetadata;
        var outputs = session.OutputMetadata;
        foreach (var name in new[] { "input_ids", "attention_mask" })
        {
            if (!inputs.TryGetValue(name, out var metadata) || metadata.ElementDataType != TensorElementType.Int64 || metadata.Dimensions.Length != 2)
            {
                problems.Add($"input '{name}' must be INT64 [batch, length]");
            }
        }

        var hasPositionIds = inputs.TryGetValue("position_ids", out var positions);
        if (hasPositionIds && (positions!.ElementDataType != TensorElementType.Int64 || positions.Dimensions.Length != 2))
        {
            problems.Add("input 'position_ids' must be INT64 [batch, length]");
        }

        var layers = 0;
        while (inputs.ContainsKey($"past_key_values.{layers}.key"))
        {
            layers++;
        }

        int heads = 0, headDim = 0;
        if (layers == 0)
        {
            problems.Add("no 'past_key_values.0.key' input: the model has no KV-cache inputs (export it with Optimum's text-generation-with-past task)");
        }
        else
        {
            var first = inputs["past_key_values.0.key"].Dimensions;
            if (first.Length == 4)
            {
                (heads, headDim) = (first[1], first[3]);
            }

            for (var i = 0; i < layers; i++)
            {
                foreach (var kind in new[] { "key", "value" })
                {
                    var name = $"past_key_values.{i}.{kind}";
                    if (!inputs.TryGetValue(name, out var past) || past.ElementDataType != TensorElementType.Float || past.Dimensions.Length != 4
                        || past.Dimensions[1] != heads || past.Dimensions[3] != headDim || heads < 1 || headDim < 1)
                    {
                        problems.Add($"input '{name}' must be FP32 [batch, heads, past, head_dim] with fixed heads and head_dim like past_key_values.0.key");
                    }

                    if (!outputs.ContainsKey($"present.{i}.{kind}"))
                    {
                        problems.Add($"output 'present.{i}.{kind}' is missing");
                    }
                }
            }
        }

        var extra = inputs.Keys.Where(name => name is not ("input_ids" or "attention_mask" or "position_ids") && !name.StartsWith("past_key_values.", StringComparison.Ordinal)).ToList();
        if (extra.Count > 0)
        {
            problems.Add($"unsupported inputs {string.Join(", ", extra)} (a merged decoder with use_cache_branch is not supported; export the with-past decoder)");
        }

        var vocabularySize = 0;
        if (!outputs.TryGetValue("logits", out var logits) || logits.ElementDataType != TensorElementType.Float || logits.Dimensions.Length != 3 || logits.Dimensions[2] < 1)
        {
            problems.Add("output 'logits' must be FP32 [batch, length, vocabulary] with a fixed vocabulary size");
        }
        else
        {
            vocabularySize = logits.Dimensions[2];
        }

        Check(spec.NumLayers, layers, "generation.num_layers", problems);
        Check(spec.NumHeads, heads, "generation.num_heads", problems);
        Check(spec.HeadDim, headDim, "generation.head_dim", problems);
        foreach (var eos in spec.EosTokenIds)
        {
            if (vocabularySize > 0 && eos >= vocabularySize)
            {
                problems.Add($"generation.eos_token_ids: {eos} is not below the model's vocabulary size {vocabularySize}");
            }
        }

        if (problems.Count > 0)
        {
            throw new InferenceException(InferenceError.ModelFailure, $"text-generation model '{modelKey}' does not fit: {string.Join("; ", problems)}");
        }

        return new DecoderSession(session, layers, heads, headDim, vocabularySize, hasPositionIds);
    }

    /// <summary>Runs one step. <paramref name="past"/> holds 2 × <see cref="Layers"/> values [B,H,P,Dh] (key, value per
    /// layer). Returns <c>logits</c> then the presents; the caller disposes them.</summary>
    public IDisposableReadOnlyCollection<OrtValue> Run(OrtValue inputIds, OrtValue attentionMask, OrtValue? positionIds, IReadOnlyList<OrtValue> past)
    {
        var values = new OrtValue[_inputNames.Length];
        var n = 0;
        values[n++] = inputIds;
        values[n++] = attentionMask;
        if (HasPositionIds)
        {
            values[n++] = positionIds ?? throw new ArgumentNullException(nameof(positionIds));
        }

        for (var i = 0; i < past.Count; i++)
        {
            values[n++] = past[i];
        }

        return Session.Run(_runOptions, _inputNames, values, _outputNames);
    }

    /// <summary>Runs one step writing into caller-owned buffers (IO binding): <paramref name="logits"/> [B,S,V] and
    /// <paramref name="presents"/>, 2 × <see cref="Layers"/> values [B,H,P+S,Dh] that must not share memory with
    /// <paramref name="past"/>. ONNX Runtime writes the outputs in place, so no output is allocated or copied again.</summary>
    public void Run(OrtValue inputIds, OrtValue attentionMask, OrtValue? positionIds, IReadOnlyList<OrtValue> past,
        OrtValue logits, IReadOnlyList<OrtValue> presents)
    {
        using var binding = Session.CreateIoBinding();
        var n = 0;
        binding.BindInput(_inputNames[n++], inputIds);
        binding.BindInput(_inputNames[n++], attentionMask);
        if (HasPositionIds)
        {
            binding.BindInput(_inputNames[n++], positionIds ?? throw new ArgumentNullException(nameof(positionIds)));
        }

        for (var i = 0; i < past.Count; i++)
        {
            binding.BindInput(_inputNames[n++], past[i]);
        }

        binding.BindOutput(_outputNames[0], logits);
        for (var i = 0; i < presents.Count; i++)
        {
            binding.BindOutput(_outputNames[1 + i], presents[i]);
        }

        Session.RunWithBinding(_runOptions, binding);
    }

    public void Dispose()
    {
        _runOptions.Dispose();
        Session.Dispose();
    }

    private static void Check(int? declared, int actual, string field, List<string> problems)
    {
        if (declared is { } value && actual > 0 && value != actual)
        {
            problems.Add($"{field} is {value} but the model's KV inputs say {actual}");
        }
    }
}
