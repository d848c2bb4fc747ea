using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Generation;

namespace ServerlessInference.Onnx.Generation.Speculative;

/// <summary>Proposes the greedy continuation of a smaller model with the same tokenizer (the draft), which keeps a KV
/// cache of its own for the sequence it serves.</summary>
/// <remarks>
/// <para>Speculation runs for one sequence at a time (the scheduler's lone sequence), so the draft keeps one
/// sequence's cache: a different sequence starts it over. Each call cuts the cache back to the longest prefix it shares
/// with the sequence's tokens (dropping the proposals the target rejected), feeds the rest in one pass, then takes k - 1
/// single-token steps. One sequence of the target's context is reserved for this cache from the target's KV budget when
/// the model loads. Owns the draft's session.</para>
/// </remarks>
internal sealed class DraftModelProposer(DecoderSession draft) : ITokenProposer
{
    private readonly List<int> _cached = [];
    private Sequence? _owner;
    private OrtValue[] _past = [];
    private IDisposable? _pastOwner;

    public DecoderSession Draft => draft;

    public int Propose(Sequence sequence, Span<int> proposals)
    {
        if (!ReferenceEquals(_owner, sequence))
        {
            Truncate(0);
            _owner = sequence;
        }

        var tokens = CollectionsMarshal.AsSpan(sequence.Tokens);
        var common = 0;
        var limit = Math.Min(_cached.Count, tokens.Length - 1);
        while (common < limit && _cached[common] == tokens[common])
        {
            common++;
        }

        Truncate(common);
        var next = Step(tokens[common..]);
        for (var i = 0; i < proposals.Length; i++)
        {
            proposals[i] = next;
            if (i + 1 < proposals.Length)
            {
                next = Step([next]);
            }
        }

        return proposals.Length;
    }

    public void Dispose()
    {
        Truncate(0);
        draft.Dispose();
    }

    /// <summary>Feeds <paramref name="ids"/> after the cached tokens and returns the draft's greedy next token.</summary>
    private int Step(ReadOnlySpan<int> ids)
    {
        var past = _cached.Count;
        var width = ids.Length;
        var idValues = new long[width];
        var positions = new long[width];
        var mask = new long[past + width];
        mask.AsSpan().Fill(1);
        for (var i = 0; i < width; i++)
        {
            idValues[i] = ids[i];
            positions[i] = past + i;
        }

        var empty = _past.Length == 0;
        if (empty)
        {
            _past = new OrtValue[2 * draft.Layers];
            for (var j = 0; j < _past.Length; j++)
            {
                _past[j] = OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [1, draft.Heads, 0, draft.HeadDim]);
            }
        }

        IDisposableReadOnlyCollection<OrtValue> outputs;
        using (var idsValue = OrtValue.CreateTensorValueFromMemory(idValues, [1, width]))
        using (var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [1, past + width]))
        using (var positionsValue = OrtValue.CreateTensorValueFromMemory(positions, [1, width]))
        {
            outputs = draft.Run(idsValue, maskValue, positionsValue, _past);
        }

        ReleasePast();
        _past = [.. Enumerable.Range(1, 2 * draft.Layers).Select(j => outputs[j])];
        _pastOwner = outputs;
        _cached.AddRange(ids);
        var vocabulary = draft.VocabularySize;
        return TokenSampler.ArgMax(outputs[0].GetTensorDataAsSpan<float>().Slice((width - 1) * vocabulary, vocabulary));
    }

    /// <summary>Keeps the first <paramref name="length"/> cached tokens' columns.</summary>
    private void Truncate(int length)
    {
        if (length == _cached.Count && (length > 0 || _past.Length == 0))
        {
            return;
        }

        if (length == 0)
        {
            ReleasePast();
            _cached.Clear();
            return;
        }

        int heads = draft.Heads, headDim = draft.HeadDim, total = _cached.Count;
        var kept = new OrtValue[_past.Length];
        for (var j = 0; j < _past.Length; j++)
        {
            var source = _past[j].GetTensorDataAsSpan<float>();
            var target = new float[heads * length * headDim];
            for (var h = 0; h < heads; h++)
            {
                source.Slice(h * total * headDim, length * headDim).CopyTo(target.AsSpan(h * length * headDim));
            }

            kept[j] = OrtValue.CreateTensorValueFromMemory(target, [1, heads, length, headDim]);
        }

        ReleasePast();
        _past = kept;
        _cached.RemoveRange(length, _cached.Count - length);
    }

    private void ReleasePast()
    {
        if (_pastOwner is not null)
        {
            _pastOwner.Dispose();
            _pastOwner = null;
        }
        else
        {
            foreach (var value in _past)
            {
                value.Dispose();
            }
        }

        _past = [];
    }
}
