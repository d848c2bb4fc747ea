using Microsoft.ML.OnnxRuntime;

namespace ServerlessInference.Onnx.Generation;

/// <summary>The KV cache of a running batch: 2 × layers tensors [B,H,P,Dh] (key, value per layer), rows left-padded to
/// the common length P, in arrays of its own that the decoder reads its past from and writes its presents into.</summary>
/// <remarks>
/// <para>Two sets of arrays (double buffer): a step reads <see cref="StepViews"/>' past from the current set and ONNX
/// Runtime writes its presents [B,H,P+w,Dh] straight into the other set (IO binding), which then becomes current. So a
/// step copies the KV once (the model's Concat), and a change of membership costs one row: a joiner is written into row
/// B (<see cref="Append"/>), a leaver's hole takes the last row (<see cref="Remove"/>). Only a joiner longer than P, and
/// trimming padding columns (<see cref="Resize"/>), copy every row.</para>
/// <para>Layout: dense [B,H,P,Dh] at the current B and P, so the first B·H·P·Dh floats of an array are the tensor and a
/// view of fewer rows is a prefix. So the arrays' capacity is a number of floats, B·H·P·Dh of them in use; they grow
/// with 25 % headroom, so a growing batch reallocates rarely. They are allocated to size (uninitialized: every float
/// read was written first), not rented from <see cref="System.Buffers.ArrayPool{T}"/>, whose power-of-two buckets
/// held up to twice the bytes (at 32 rows of lm-bench, 1 GiB of arrays for ~300 MB of live KV), and kept while the
/// batch is merely empty (<see cref="Empty"/>), as a serving engine keeps its KV memory, until <see cref="Clear"/>
/// (after a failed step) or <see cref="Dispose"/> (the model unloaded) lets the GC have them.</para>
/// <para>Not thread-safe: the scheduler thread owns it. The views it hands out are valid until the next call that
/// changes the batch.</para>
/// </remarks>
internal sealed class KvBatch : IDisposable
{
    private const double Headroom = 1.25;

    private readonly int _heads;
    private readonly int _headDim;
    private readonly float[][]?[] _sets = new float[][]?[2];
    private readonly List<OrtValue> _views = [];
    private int _current;
    private int _capacity;

    public KvBatch(int layers, int heads, int headDim)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(layers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(heads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(headDim, 1);
        Tensors = 2 * layers;
        _heads = heads;
        _headDim = headDim;
    }

    /// <summary>2 × layers: key and value of every layer, in the decoder's input order.</summary>
    public int Tensors { get; }

    /// <summary>B: rows in the batch.</summary>
    public int Rows { get; private set; }

    /// <summary>P: columns (tokens) per row, live ones right-aligned.</summary>
    public int Length { get; private set; }

    /// <summary>Floats per array: B·H·P·Dh may grow to this without reallocating.</summary>
    public int Capacity => _capacity;

    /// <summary>Tensor <paramref name="tensor"/> as it is now, [B,H,P,Dh] dense.</summary>
    public ReadOnlySpan<float> Tensor(int tensor) =>
        Rows == 0 ? [] : _sets[_current]![tensor].AsSpan(0, Rows * _heads * Length * _headDim);

    /// <summary>Views for a step that adds <paramref name="width"/> tokens to every row: the past [B,H,P,Dh] over the
    /// current set and the presents [B,H,P+width,Dh] over the other. Valid until the batch changes;
    /// <see cref="Advance"/> after the step ran.</summary>
    public (OrtValue[] Past, OrtValue[] Presents) StepViews(int width)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        if (Rows == 0)
        {
            throw new InvalidOperationException("the batch has no rows");
        }

        Reserve(Rows, Length + width);
        DisposeViews();
        var past = new OrtValue[Tensors];
        var presents = new OrtValue[Tensors];
        for (var j = 0; j < Tensors; j++)
        {
            past[j] = View(_sets[_current]![j], Rows, Length);
            presents[j] = View(_sets[1 - _current]![j], Rows, Length + width);
        }

        return (past, presents);
    }

    /// <summary>After a step wrote its presents into the views of <see cref="StepViews"/>: they become the batch's KV,
    /// keeping the first <paramref name="kept"/> of the <paramref name="width"/> new columns of every row (fewer: a
    /// speculative step's rejected tokens, cut off in place).</summary>
    public void Advance(int width, int kept)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(kept, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(kept, width);
        DisposeViews();
        _current = 1 - _current;
        var written = Length + width;
        Length += kept;
        if (kept == width)
        {
            return;
        }

        // Per (row, head) the kept columns are a prefix of the written ones; targets never pass their sources.
        var run = Length * _headDim;
        foreach (var array in _sets[_current]!)
        {
            for (var block = 1; block < Rows * _heads; block++)
            {
                array.AsSpan(block * written * _headDim, run).CopyTo(array.AsSpan(block * run, run));
            }
        }
    }

    /// <summary>Adds a row from a prefill's presents (<paramref name="presents"/>: [1,H,S,Dh] each, S ≥
    /// <paramref name="live"/>), its last <paramref name="live"/> columns right-aligned. Needs
    /// <paramref name="live"/> ≤ <see cref="Length"/> (<see cref="Resize"/> first); returns the new row's index.</summary>
    public int Append(IReadOnlyList<OrtValue> presents, int live)
    {
        if (presents.Count != Tensors)
        {
            throw new ArgumentException($"expected {Tensors} tensors, got {presents.Count}", nameof(presents));
        }

        if (live < 1 || live > Length)
        {
            throw new ArgumentOutOfRangeException(nameof(live), live, $"a row's live length must be 1 to the batch length {Length}");
        }

        Reserve(Rows + 1, Length);
        DisposeViews();
        var row = Rows;
        var pad = (Length - live) * _headDim;
        for (var j = 0; j < Tensors; j++)
        {
            var shape = presents[j].GetTensorTypeAndShape().Shape;
            var sourceLength = checked((int)shape[2]);
            if (shape[0] != 1 || shape[1] != _heads || shape[3] != _headDim || sourceLength < live)
            {
                throw new ArgumentException($"tensor {j} is [{string.Join(",", shape)}]; expected [1,{_heads},>={live},{_headDim}]", nameof(presents));
            }

            var source = presents[j].GetTensorDataAsSpan<float>();
            var target = _sets[_current]![j];
            for (var h = 0; h < _heads; h++)
            {
                var to = ((row * _heads) + h) * Length * _headDim;
                target.AsSpan(to, pad).Clear();
                source.Slice(((h * sourceLength) + sourceLength - live) * _headDim, live * _headDim).CopyTo(target.AsSpan(to + pad));
            }
        }

        Rows++;
        return row;
    }

    /// <summary>Removes row <paramref name="row"/>: the last row moves into its place (one row copy per tensor). The
    /// caller renumbers the moved row (it was <see cref="Rows"/> - 1 before the call).</summary>
    public void Remove(int row)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, Rows);
        DisposeViews();
        var last = Rows - 1;
        if (row != last)
        {
            var size = _heads * Length * _headDim;
            foreach (var array in _sets[_current]!)
            {
                array.AsSpan(last * size, size).CopyTo(array.AsSpan(row * size, size));
            }
        }

        Rows--;
        if (Rows == 0)
        {
            Length = 0;
        }
    }

    /// <summary>Re-lays every row to <paramref name="length"/> columns, keeping each row's last min(P, length) columns
    /// right-aligned and zeroing new padding on the left. Growing makes room for a longer joiner; shrinking drops
    /// all-pad columns (the caller keeps <paramref name="length"/> ≥ every row's live length).</summary>
    public void Resize(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length == Length)
        {
            return;
        }

        DisposeViews();
        if (Rows == 0)
        {
            Length = length;
            return;
        }

        Reserve(Rows, Math.Max(Length, length));
        var copied = Math.Min(Length, length);
        var pad = (length - copied) * _headDim;
        for (var j = 0; j < Tensors; j++)
        {
            var source = _sets[_current]![j];
            var target = _sets[1 - _current]![j];
            for (var block = 0; block < Rows * _heads; block++)
            {
                var to = block * length * _headDim;
                target.AsSpan(to, pad).Clear();
                source.AsSpan(((block * Length) + Length - copied) * _headDim, copied * _headDim).CopyTo(target.AsSpan(to + pad));
            }
        }

        _current = 1 - _current;
        Length = length;
    }

    /// <summary>Empties the batch (the last row left) and keeps the arrays for the next rows.</summary>
    public void Empty()
    {
        DisposeViews();
        Rows = 0;
        Length = 0;
    }

    /// <summary>Empties the batch and drops the arrays (after a failed step, or when the model unloads).</summary>
    public void Clear()
    {
        Empty();
        _sets[0] = _sets[1] = null;
        _capacity = 0;
    }

    public void Dispose() => Clear();

    /// <summary>Makes both sets hold <paramref name="rows"/> × <paramref name="columns"/> (a call before several
    /// <see cref="Append"/>s grows the arrays once), growing with headroom and copying the current tensors (the other
    /// set holds nothing between steps).</summary>
    public void Reserve(int rows, int columns)
    {
        var needed = checked(rows * _heads * columns * _headDim);
        if (_sets[0] is not null && needed <= _capacity)
        {
            return;
        }

        DisposeViews();
        var size = (int)Math.Min(Array.MaxLength, (long)(needed * Headroom));
        var used = Rows * _heads * Length * _headDim;
        var current = new float[Tensors][];
        var other = new float[Tensors][];
        _sets[1 - _current] = null; // holds nothing between steps: let it go before allocating
        for (var j = 0; j < Tensors; j++)
        {
            if (used > 0)
            {
                current[j] = GC.AllocateUninitializedArray<float>(size);
                _sets[_current]![j].AsSpan(0, used).CopyTo(current[j]);
                _sets[_current]![j] = null!; // the old array may go before the next one is allocated
            }
            else
            {
                current[j] = GC.AllocateUninitializedArray<float>(size);
            }

            other[j] = GC.AllocateUninitializedArray<float>(size);
        }

        _sets[_current] = current;
        _sets[1 - _current] = other;
        _capacity = size;
    }

    private OrtValue View(float[] array, int rows, int columns)
    {
        var value = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance,
            new Memory<float>(array, 0, rows * _heads * columns * _headDim), [rows, _heads, columns, _headDim]);
        _views.Add(value);
        return value;
    }

    private void DisposeViews()
    {
        foreach (var view in _views)
        {
            view.Dispose();
        }

        _views.Clear();
    }
}
