using System.Buffers;
using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Generation;

namespace ServerlessInference.Onnx.Generation;

/// <summary>Iteration-level scheduling (continuous batching) over one <see cref="DecoderSession"/>.</summary>
/// <remarks>
/// <para>One dedicated thread runs the loop; between two decode steps it drops sequences that ended (cancelled,
/// abandoned, past their deadline, finished), admits waiting ones in arrival order while the concurrency limit and the
/// KV byte budget allow, prefills each newcomer alone (B=1, empty past) and samples its first token. The batch's KV
/// cache is a <see cref="KvBatch"/>: a step reads its past from one set of arrays and ONNX Runtime writes the
/// presents straight into the other (IO binding), so a step copies the KV once (the model's Concat) whether or not
/// membership changed. A leaver's row takes the last row (one row copy), a newcomer's prefill KV is copied,
/// right-aligned (left padding), into a new last row; only a newcomer longer than the batch's columns, or trimming
/// all-pad columns once they exceed a slack (<see cref="TrimSlack"/>), copies every row.</para>
/// <para>Padding regroups floating-point sums, so a batched row's logits differ from a lone run's by ~1e-6: greedy
/// tokens agree except at near-ties of the top two logits.</para>
/// <para>With <see cref="TextGenerationOptions.PrefixCaching"/>, a newcomer's prefill starts from the KV of the cached
/// blocks its tokens begin with (<see cref="PrefixCache"/>) and adds its own whole blocks to the cache; the cache's
/// bytes count against the KV budget beside the reservations.</para>
/// </remarks>
internal sealed partial class GenerationScheduler : IDisposable
{
    private readonly DecoderSession _decoder;
    private readonly ITextTokenizer _tokenizer;
    private readonly GenerationSpec _spec;
    private readonly TextGenerationOptions _options;
    private readonly TimeProvider _time;
    private readonly IGenerationObserver? _observer;
    private readonly ILogger _logger;
    private readonly string _modelKey;
    private readonly HashSet<int> _eos;
    private readonly ConcurrentQueue<Sequence> _incoming = new();
    private readonly List<Sequence> _waiting = [];
    private readonly List<Sequence> _running = [];
    private readonly ManualResetEventSlim _signal = new(false);
    private readonly Thread _thread;
    private readonly float[] _scratch;
    private readonly PrefixCache? _prefixCache;
    private volatile bool _stopping;

    // The batch's KV cache; row i is _running[i].
    private readonly KvBatch _kv;
    private float[] _logits = [];
    private long _reserved;

    public GenerationScheduler(DecoderSession decoder, ITextTokenizer tokenizer, GenerationSpec spec, TextGenerationOptions options,
        TimeProvider time, IGenerationObserver? observer, string modelKey, ILogger logger)
    {
        _decoder = decoder;
        _tokenizer = tokenizer;
        _spec = spec;
        _options = options;
        _time = time;
        _observer = observer;
        _modelKey = modelKey;
        _logger = logger;
        _eos = [.. spec.EosTokenIds];
        _scratch = new float[decoder.VocabularySize];
        _kv = new KvBatch(decoder.Layers, decoder.Heads, decoder.HeadDim);
        Counters = new GenerationCounters { KvBytesBudget = options.KvCacheBudgetBytes };
        _prefixCache = options.PrefixCaching ? new PrefixCache(options.PrefixCacheBlockTokens, decoder, Counters) : null;
        _thread = new Thread(Loop) { IsBackground = true, Name = $"generation {modelKey}" };
        _thread.Start();
    }

    public GenerationCounters Counters { get; }

    public DecoderSession Decoder => _decoder;

    /// <summary>The prefix keys whose first block the cache holds (empty when prefix caching is off).</summary>
    public IReadOnlyCollection<string> HeldPrefixKeys => _prefixCache?.HeldPrefixKeys ?? [];

    /// <summary>Checks and queues a sequence; its events arrive on <see cref="Sequence.Output"/>.</summary>
    /// <exception cref="InferenceException"><see cref="InferenceError.BadRequest"/>: the request is invalid or does not fit.</exception>
    public Sequence Submit(GenerationRequest request, IReadOnlyList<int> resumeTokens, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        if (request.Validate() is { } problem)
        {
            throw new InferenceException(InferenceError.BadRequest, problem);
        }

        var prompt = request.PromptTokenIds ?? _tokenizer.Encode(request.Prompt!);
        if (prompt.Count == 0)
        {
            throw new InferenceException(InferenceError.BadRequest, "the prompt encodes to no tokens");
        }

        foreach (var token in prompt.Concat(resumeTokens))
        {
            if ((uint)token >= (uint)_decoder.VocabularySize)
            {
                throw new InferenceException(InferenceError.BadRequest, $"token id {token} is outside the vocabulary (0 to {_decoder.VocabularySize - 1})");
            }
        }

        if (prompt.Count + resumeTokens.Count >= _spec.ContextLength)
        {
            throw new InferenceException(InferenceError.BadRequest,
                $"the prompt ({prompt.Count} tokens{(resumeTokens.Count > 0 ? $" + {resumeTokens.Count} resumed" : "")}) leaves no room in the context of {_spec.ContextLength} tokens");
        }

        var maxGenerated = Math.Min(request.MaxTokens, _spec.ContextLength - prompt.Count);
        var reservation = _decoder.KvBytesPerToken * (prompt.Count + maxGenerated);
        if (reservation > _options.KvCacheBudgetBytes)
        {
            throw new InferenceException(InferenceError.BadRequest,
                $"the prompt and max_tokens need {reservation} bytes of KV cache; this worker's budget is {_options.KvCacheBudgetBytes}");
        }

        var sequence = new Sequence(request, prompt, maxGenerated, reservation, request.Sampling.Seed ?? (ulong)Random.Shared.NextInt64(),
            _tokenizer, cancellationToken, _time.GetTimestamp())
        {
            PromptKey = _prefixCache is null ? null : PromptPrefix.Key(request.Prompt),
        };
        foreach (var token in resumeTokens)
        {
            // Rebuild the text and stop-string state the first attempt had; nothing is emitted again.
            if (Advance(sequence, token) is { } finish)
            {
                sequence.Complete(new GeneratedToken(sequence.Generated, -1, "", finish.Reason, _time.GetTimestamp()));
                return sequence;
            }
        }

        _incoming.Enqueue(sequence);
        _signal.Set();
        return sequence;
    }

    public void Dispose()
    {
        if (_stopping)
        {
            return;
        }

        _stopping = true;
        _signal.Set();
        _thread.Join();
        var disposed = new ObjectDisposedException(nameof(GenerationScheduler), $"model '{_modelKey}' was unloaded");
        while (_incoming.TryDequeue(out var sequence))
        {
            _waiting.Add(sequence);
        }

        foreach (var sequence in _running.Concat(_waiting))
        {
            sequence.Fail(disposed);
        }

        _running.Clear();
        _waiting.Clear();
        _kv.Dispose();
        if (_logits.Length > 0)
        {
            ArrayPool<float>.Shared.Return(_logits);
            _logits = [];
        }

        _signal.Dispose();
    }

    private void Loop()
    {
        while (!_stopping)
        {
            _signal.Reset();
            while (_incoming.TryDequeue(out var sequence))
            {
                _waiting.Add(sequence);
            }

            try
            {
                var changed = DropEnded();
                var joiners = Admit();
                if (changed || joiners.Count > 0)
                {
                    Rebatch(joiners);
                }

                if (_running.Count > 0 && !TrySpeculativeStep())
                {
                    DecodeStep();
                }
            }
            catch (Exception e)
            {
                Log.GenerationStepFailed(_logger, _modelKey, _running.Count, e);
                var failure = new InferenceException(InferenceError.ModelFailure, $"model '{_modelKey}' failed a generation step: {e.Message}", e);
                foreach (var sequence in _running)
                {
                    sequence.Fail(failure);
                    ReleasePrefix(sequence);
                }

                _running.Clear();
                _reserved = 0;
                ReleasePast();
            }

            Counters.SetRunning(_running.Count, _waiting.Count + _incoming.Count);
            Counters.SetKvBytes(_kv.Rows * (long)_kv.Length * _decoder.KvBytesPerToken, _reserved);
            Counters.SetPrefixBlocks(_prefixCache?.Count ?? 0);
            if (_running.Count == 0 && _incoming.IsEmpty)
            {
                _signal.Wait();
            }
        }
    }

    /// <summary>Removes finished, cancelled, abandoned and expired sequences; true when the batch lost a row.</summary>
    private bool DropEnded()
    {
        var now = _time.GetUtcNow();
        var changed = false;
        for (var i = _running.Count - 1; i >= 0; i--)
        {
            var sequence = _running[i];
            if (sequence.Finished || End(sequence, now))
            {
                RemoveRow(i);
                _reserved -= sequence.Reservation;
                ReleasePrefix(sequence);
                changed = true;
            }
        }

        for (var i = _waiting.Count - 1; i >= 0; i--)
        {
            if (End(_waiting[i], now))
            {
                _waiting.RemoveAt(i);
            }
        }

        return changed;
    }

    private bool End(Sequence sequence, DateTimeOffset now)
    {
        FinishReason reason;
        if (sequence.Abandoned || sequence.CancellationToken.IsCancellationRequested)
        {
            reason = FinishReason.Cancelled;
        }
        else if (sequence.Request.Deadline is { } deadline && now >= deadline)
        {
            reason = FinishReason.Deadline;
        }
        else
        {
            return false;
        }

        var text = FinishText(sequence, out _);
        Finish(sequence, new GeneratedToken(sequence.Generated, -1, text, reason, _time.GetTimestamp()));
        return true;
    }

    /// <summary>Admits waiting sequences in arrival order and prefills each; returns those that joined the batch with
    /// their prefill KV (a sequence finished by its first token does not join).</summary>
    private List<(Sequence Sequence, IDisposableReadOnlyCollection<OrtValue> Presents)> Admit()
    {
        var joiners = new List<(Sequence, IDisposableReadOnlyCollection<OrtValue>)>();
        while (_waiting.Count > 0 && _running.Count + joiners.Count < _options.MaxConcurrentSequences)
        {
            var sequence = _waiting[0];
            if (!TryReserve(sequence))
            {
                break;
            }

            _waiting.RemoveAt(0);
            IDisposableReadOnlyCollection<OrtValue>? outputs = null;
            try
            {
                outputs = Prefill(sequence, out var rows);
                var logits = outputs[0].GetTensorDataAsSpan<float>();
                var last = logits.Slice((rows - 1) * _decoder.VocabularySize, _decoder.VocabularySize);
                Accept(sequence, Sample(sequence, last));
            }
            catch (Exception e)
            {
                // A failed prefill fails its own sequence only; the running batch is untouched.
                outputs?.Dispose();
                outputs = null;
                Log.GenerationStepFailed(_logger, _modelKey, 1, e);
                sequence.Finished = true;
                sequence.Fail(new InferenceException(InferenceError.ModelFailure, $"model '{_modelKey}' failed to prefill a prompt: {e.Message}", e));
            }

            if (sequence.Finished)
            {
                _reserved -= sequence.Reservation;
                ReleasePrefix(sequence);
                outputs?.Dispose();
            }
            else
            {
                joiners.Add((sequence, outputs!));
            }
        }

        return joiners;
    }

    /// <summary>Reserves the sequence's KV bytes if they fit the budget beside the others' and the prefix cache's,
    /// evicting unheld cached blocks for room; the sequence then holds the cached blocks its tokens begin with.</summary>
    private bool TryReserve(Sequence sequence)
    {
        var budget = _options.KvCacheBudgetBytes;
        if (_prefixCache is null)
        {
            if (_reserved + sequence.Reservation > budget)
            {
                return false;
            }
        }
        else
        {
            var chain = _prefixCache.Match(sequence.Tokens);
            _prefixCache.Hold(chain); // before making room: its own blocks stay
            if (!_prefixCache.MakeRoom(_reserved + sequence.Reservation, budget))
            {
                _prefixCache.Release(chain);
                return false;
            }

            sequence.PrefixBlocks = chain;
        }

        _reserved += sequence.Reservation;
        return true;
    }

    /// <summary>Prefills the sequence alone (B=1), from its cached blocks' KV when it holds some
    /// (<see cref="PrefixPrefill"/>), and adds its whole blocks to the prefix cache. <paramref name="rows"/>: the logits' rows.</summary>
    private IDisposableReadOnlyCollection<OrtValue> Prefill(Sequence sequence, out int rows)
    {
        var outputs = PrefixPrefill.Run(_decoder, sequence.Tokens, _prefixCache, sequence.PrefixBlocks, out var cached);
        var length = sequence.Tokens.Count;
        rows = length - cached;
        Counters.AddStep();
        Counters.AddPromptTokens(rows);
        sequence.KvLength = length;
        if (_prefixCache is not null)
        {
            Counters.AddPrefixLookup(length, cached);
            sequence.PrefixBlocks ??= [];
            try
            {
                _prefixCache.Insert(sequence.Tokens, [.. outputs.Skip(1)], sequence.PrefixBlocks, sequence.PromptKey, _reserved, _options.KvCacheBudgetBytes);
            }
            catch
            {
                outputs.Dispose();
                throw;
            }
        }

        return outputs;
    }

    /// <summary>Ends the sequence's hold on its cached blocks.</summary>
    private void ReleasePrefix(Sequence sequence)
    {
        if (sequence.PrefixBlocks is { } chain)
        {
            sequence.PrefixBlocks = null;
            _prefixCache!.Release(chain);
        }
    }

    /// <summary>Removes running row <paramref name="row"/>; the last row moves into its place, in the KV cache and in
    /// <see cref="_running"/> (whose order is the rows').</summary>
    private void RemoveRow(int row)
    {
        var last = _running.Count - 1;
        _kv.Remove(row);
        if (row != last)
        {
            _running[row] = _running[last];
            _running[row].Row = row;
        }

        _running.RemoveAt(last);
    }

    /// <summary>Adds the joiners' prefill KV as new rows (widening every row first when one is longer than the batch),
    /// then trims all-pad columns when they exceed the slack; empties the cache when no row is left.</summary>
    private void Rebatch(List<(Sequence Sequence, IDisposableReadOnlyCollection<OrtValue> Presents)> joiners)
    {
        var joined = 0;
        try
        {
            if (joiners.Count > 0)
            {
                var longest = joiners.Max(j => j.Sequence.KvLength);
                _kv.Reserve(_kv.Rows + joiners.Count, Math.Max(_kv.Length, longest) + 1); // grow once, for the next step too
                if (longest > _kv.Length)
                {
                    _kv.Resize(longest);
                }

                var presents = new OrtValue[_kv.Tensors];
                foreach (var (sequence, outputs) in joiners)
                {
                    for (var j = 0; j < presents.Length; j++)
                    {
                        presents[j] = outputs[1 + j];
                    }

                    sequence.Row = _kv.Append(presents, sequence.KvLength);
                    _running.Add(sequence);
                    joined++;
                }
            }

            if (_running.Count == 0)
            {
                _kv.Empty();
                return;
            }

            var live = 0;
            foreach (var sequence in _running)
            {
                live = Math.Max(live, sequence.KvLength);
            }

            if (_kv.Length - live > TrimSlack(_kv.Length))
            {
                _kv.Resize(live);
            }
        }
        catch
        {
            // Joiners not in the batch yet fail with the running ones (the caller fails every running sequence).
            for (var i = joined; i < joiners.Count; i++)
            {
                _running.Add(joiners[i].Sequence);
            }

            throw;
        }
        finally
        {
            foreach (var (_, presents) in joiners)
            {
                presents.Dispose();
            }
        }
    }

    /// <summary>All-pad columns the batch keeps before it trims them: trimming copies every row, so it waits until the
    /// padding costs the steps more than a copy (an eighth of the columns, at least 16).</summary>
    internal static int TrimSlack(int length) => Math.Max(16, length / 8);

    /// <summary>Runs one step of <paramref name="width"/> new tokens per row over the batch's KV: the presents go into
    /// the cache's other set and the logits [B,width,V] into <see cref="_logits"/>; <see cref="KvBatch.Advance"/> follows.</summary>
    private void RunStep(long[] ids, long[] mask, long[] positions, int width)
    {
        var batch = _kv.Rows;
        var total = _kv.Length + width;
        var logitsSize = batch * width * _decoder.VocabularySize;
        if (_logits.Length < logitsSize)
        {
            if (_logits.Length > 0)
            {
                ArrayPool<float>.Shared.Return(_logits);
                _logits = [];
            }

            _logits = ArrayPool<float>.Shared.Rent(logitsSize);
        }

        var (past, presents) = _kv.StepViews(width);
        using var idsValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<long>(ids, 0, batch * width), [batch, width]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<long>(mask, 0, batch * total), [batch, total]);
        using var positionsValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<long>(positions, 0, batch * width), [batch, width]);
        using var logitsValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<float>(_logits, 0, logitsSize),
            [batch, width, _decoder.VocabularySize]);
        _decoder.Run(idsValue, maskValue, positionsValue, past, logitsValue, presents);
        Counters.AddStep();
    }

    private void DecodeStep()
    {
        var batch = _running.Count;
        var length = _kv.Length;
        var total = length + 1;
        var ids = ArrayPool<long>.Shared.Rent(batch);
        var positions = ArrayPool<long>.Shared.Rent(batch);
        var mask = ArrayPool<long>.Shared.Rent(batch * total);
        try
        {
            for (var row = 0; row < batch; row++)
            {
                var sequence = _running[row];
                ids[row] = sequence.Pending;
                positions[row] = sequence.KvLength;
                var pad = length - sequence.KvLength;
                mask.AsSpan(row * total, pad).Clear();
                mask.AsSpan((row * total) + pad, total - pad).Fill(1);
            }

            RunStep(ids, mask, positions, 1);
            _kv.Advance(1, 1);
            var vocabulary = _decoder.VocabularySize;
            for (var row = 0; row < batch; row++)
            {
                var sequence = _running[row];
                sequence.KvLength++;
                Accept(sequence, Sample(sequence, _logits.AsSpan(row * vocabulary, vocabulary)));
            }
        }
        finally
        {
            ArrayPool<long>.Shared.Return(ids);
            ArrayPool<long>.Shared.Return(positions);
            ArrayPool<long>.Shared.Return(mask);
        }
    }

    private int Sample(Sequence sequence, ReadOnlySpan<float> logits)
    {
        logits.CopyTo(_scratch);
        var tokens = sequence.Tokens;
        return TokenSampler.Sample(_scratch, sequence.Request.Sampling, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tokens), sequence.Seed, tokens.Count);
    }

    /// <summary>Records a sampled token and emits its event.</summary>
    private void Accept(Sequence sequence, int token)
    {
        var index = sequence.Generated;
        var finish = Advance(sequence, token);
        var now = _time.GetTimestamp();
        Counters.AddTokens(1);
        if (_observer is not null)
        {
            if (sequence.LastToken == 0)
            {
                _observer.TimeToFirstToken(_modelKey, _time.GetElapsedTime(sequence.Submitted, now));
            }
            else
            {
                _observer.InterTokenLatency(_modelKey, _time.GetElapsedTime(sequence.LastToken, now));
            }
        }

        sequence.LastToken = now;
        var generated = new GeneratedToken(index, token, finish?.Text ?? sequence.Release, finish?.Reason, now);
        if (finish is null)
        {
            sequence.Pending = token;
            sequence.Write(generated);
        }
        else
        {
            Finish(sequence, generated);
        }
    }

    /// <summary>Adds <paramref name="token"/> to the sequence's tokens, text and stop-string state. Returns the finish
    /// (reason and final text) when it ends the generation; otherwise the released text is in <see cref="Sequence.Release"/>.</summary>
    private (FinishReason Reason, string Text)? Advance(Sequence sequence, int token)
    {
        sequence.Tokens.Add(token);
        sequence.Generated++;
        if (_eos.Contains(token))
        {
            var text = FinishText(sequence, out var stopped);
            return (stopped ? FinishReason.Stop : FinishReason.Eos, text);
        }

        var (release, stop) = sequence.Stops.Add(sequence.Detokenizer.Add(token));
        if (stop)
        {
            return (FinishReason.Stop, release);
        }

        if (sequence.Generated >= sequence.MaxGenerated)
        {
            var text = release + FinishText(sequence, out var stopped);
            return (stopped ? FinishReason.Stop : FinishReason.Length, text);
        }

        sequence.Release = release;
        return null;
    }

    private static string FinishText(Sequence sequence, out bool stopped)
    {
        var (release, stop) = sequence.Stops.Add(sequence.Detokenizer.Flush());
        stopped = stop;
        return stop ? release : release + sequence.Stops.Flush();
    }

    private void Finish(Sequence sequence, GeneratedToken last)
    {
        sequence.Finished = true;
        Counters.AddCompleted(); // before the caller can see the end
        sequence.Complete(last);
    }

    private void ReleasePast() => _kv.Clear();
}

/// <summary>One generation inside the scheduler. Fields are touched by the scheduler thread only, except the output
/// channel (read by the caller) and <see cref="Abandon"/>.</summary>
internal sealed class Sequence(GenerationRequest request, IReadOnlyList<int> prompt, int maxGenerated, long reservation, ulong seed,
    ITextTokenizer tokenizer, CancellationToken cancellationToken, long submitted)
{
    private readonly Channel<GeneratedToken> _output = Channel.CreateUnbounded<GeneratedToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private volatile bool _abandoned;

    public GenerationRequest Request { get; } = request;

    /// <summary>Prompt, then every generated token (resumed ones included).</summary>
    public List<int> Tokens { get; } = [.. prompt];

    public int PromptLength { get; } = prompt.Count;

    public int MaxGenerated { get; } = maxGenerated;

    public long Reservation { get; } = reservation;

    public ulong Seed { get; } = seed;

    public CancellationToken CancellationToken { get; } = cancellationToken;

    public long Submitted { get; } = submitted;

    public StreamingDetokenizer Detokenizer { get; } = new(tokenizer);

    public StopStringMatcher Stops { get; } = new(request.Stop);

    public ChannelReader<GeneratedToken> Output => _output.Reader;

    public int Generated { get; set; }

    /// <summary>Tokens whose keys and values are in the cache.</summary>
    public int KvLength { get; set; }

    /// <summary>The last sampled token, fed at the next step.</summary>
    public int Pending { get; set; }

    /// <summary>Row in the batch cache.</summary>
    public int Row { get; set; }

    public bool Finished { get; set; }

    /// <summary>The <see cref="PromptPrefix"/> key of the prompt text (null: no prefix cache, a short or token-id prompt).</summary>
    public string? PromptKey { get; init; }

    /// <summary>Prefix-cache blocks the sequence holds while it runs: those its tokens began with, then those it added.</summary>
    public List<PrefixBlock>? PrefixBlocks { get; set; }

    /// <summary>Speculative decoding's state, once the sequence has speculated.</summary>
    public Speculative.SpeculationState? Speculation { get; set; }

    public string Release { get; set; } = "";

    public long LastToken { get; set; }

    public bool Abandoned => _abandoned;

    /// <summary>The caller stopped reading: drop the sequence at the next step.</summary>
    public void Abandon() => _abandoned = true;

    public void Write(GeneratedToken token) => _output.Writer.TryWrite(token);

    public void Complete(GeneratedToken last)
    {
        _output.Writer.TryWrite(last);
        _output.Writer.TryComplete();
    }

    public void Fail(Exception error) => _output.Writer.TryComplete(error);
}
