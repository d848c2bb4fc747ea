using ServerlessInference.Models;

namespace ServerlessInference.Generation;

/// <summary>A loaded <c>text-generation</c> model: a shared iteration-level scheduler that runs every sequence
/// given to it in one batch, joining and leaving between decode steps.</summary>
/// <remarks>Thread-safe: any number of <see cref="GenerateAsync"/> enumerations may run at once. Disposing ends the
/// scheduler: running enumerations end with <see cref="ObjectDisposedException"/>.
/// <see cref="ILoadedModel.RunBatchAsync"/> answers every tensor request with a bad-request error.</remarks>
public interface ITextGenerationModel : ILoadedModel
{
    GenerationSpec Generation { get; }

    ITextTokenizer Tokenizer { get; }

    /// <summary>Live counters of the scheduler, for metrics and <c>/status</c>.</summary>
    GenerationCounters Counters { get; }

    /// <summary>Generates tokens for <paramref name="request"/>, one event per token; the last event has a
    /// <see cref="GeneratedToken.FinishReason"/>.</summary>
    /// <param name="resumeTokens">Tokens an earlier attempt already emitted (crash resume): they are prefilled after the
    /// prompt and not emitted again; the events continue at index <c>resumeTokens.Count</c> with what an uninterrupted
    /// run would have made (greedy and seeded sampling), text and stop-string state included.</param>
    /// <param name="cancellationToken">Stops the sequence at the next step and frees its KV cache; the enumeration
    /// then ends with a <see cref="FinishReason.Cancelled"/> event.</param>
    /// <exception cref="InferenceException"><see cref="InferenceError.BadRequest"/> when the request is invalid or
    /// its prompt (with <paramref name="resumeTokens"/>) leaves no room in the context; thrown on the first
    /// <c>MoveNextAsync</c>. <see cref="InferenceError.ModelFailure"/> when a step fails.</exception>
    IAsyncEnumerable<GeneratedToken> GenerateAsync(GenerationRequest request, IReadOnlyList<int>? resumeTokens, CancellationToken cancellationToken);
}

/// <summary>Hooks for latency metrics, called on the scheduler thread; keep them cheap.</summary>
public interface IGenerationObserver
{
    /// <summary>From <see cref="ITextGenerationModel.GenerateAsync"/> to the first token made (queueing and prefill
    /// included).</summary>
    void TimeToFirstToken(string model, TimeSpan elapsed);

    /// <summary>Between two consecutive tokens of one sequence.</summary>
    void InterTokenLatency(string model, TimeSpan elapsed);
}

/// <summary>Counters of one model's scheduler. Written by the engine's scheduler thread (the setters are for engines),
/// read from any thread.</summary>
public sealed class GenerationCounters
{
    private long _tokensGenerated;
    private long _promptTokens;
    private long _steps;
    private long _completedSequences;
    private int _running;
    private int _peakRunning;
    private int _waiting;
    private long _kvBytesInUse;
    private long _kvBytesReserved;
    private long _prefixLookupTokens;
    private long _prefixHitTokens;
    private long _prefixEvictions;
    private int _prefixBlocks;
    private long _speculativeProposed;
    private long _speculativeAccepted;

    /// <summary>Sequences in the running batch.</summary>
    public int RunningSequences => Volatile.Read(ref _running);

    /// <summary>The most sequences the running batch has held at once since the model loaded.</summary>
    public int PeakRunningSequences => Volatile.Read(ref _peakRunning);

    /// <summary>Sequences waiting for admission (KV budget or the concurrency limit).</summary>
    public int WaitingSequences => Volatile.Read(ref _waiting);

    /// <summary>Bytes of the batch's KV cache as it is now (padding included).</summary>
    public long KvBytesInUse => Interlocked.Read(ref _kvBytesInUse);

    /// <summary>Bytes reserved by admitted sequences (each reserves its prompt plus its max tokens).</summary>
    public long KvBytesReserved => Interlocked.Read(ref _kvBytesReserved);

    /// <summary>The reservation limit the scheduler admits against.</summary>
    public long KvBytesBudget { get; set; }

    public long TokensGenerated => Interlocked.Read(ref _tokensGenerated);

    /// <summary>Prompt (and resumed) tokens prefilled.</summary>
    public long PromptTokens => Interlocked.Read(ref _promptTokens);

    /// <summary>Model runs (prefills and decode steps).</summary>
    public long Steps => Interlocked.Read(ref _steps);

    public long CompletedSequences => Interlocked.Read(ref _completedSequences);

    /// <summary>Prompt tokens of sequences admitted while the prefix cache is on: the denominator of its hit rate.</summary>
    public long PrefixCacheLookupTokens => Interlocked.Read(ref _prefixLookupTokens);

    /// <summary>Prompt tokens whose KV came from the prefix cache instead of a prefill.</summary>
    public long PrefixCacheHitTokens => Interlocked.Read(ref _prefixHitTokens);

    /// <summary>Blocks in the prefix cache now (held by running sequences or not).</summary>
    public int PrefixCacheBlocks => Volatile.Read(ref _prefixBlocks);

    /// <summary>Prefix-cache blocks evicted to make room (least recently used, held by no running sequence).</summary>
    public long PrefixCacheEvictions => Interlocked.Read(ref _prefixEvictions);

    /// <summary>Tokens a speculative proposer (draft model or prompt lookup) put before the model for verification.</summary>
    public long SpeculativeProposedTokens => Interlocked.Read(ref _speculativeProposed);

    /// <summary>Proposed tokens the model's verification kept; divided by <see cref="SpeculativeProposedTokens"/> it is
    /// the acceptance rate.</summary>
    public long SpeculativeAcceptedTokens => Interlocked.Read(ref _speculativeAccepted);

    public void SetRunning(int running, int waiting)
    {
        Volatile.Write(ref _running, running);
        if (running > _peakRunning)
        {
            Volatile.Write(ref _peakRunning, running); // one writer: the scheduler thread
        }
        Volatile.Write(ref _waiting, waiting);
    }

    public void SetKvBytes(long inUse, long reserved)
    {
        Interlocked.Exchange(ref _kvBytesInUse, inUse);
        Interlocked.Exchange(ref _kvBytesReserved, reserved);
    }

    public void AddTokens(long count) => Interlocked.Add(ref _tokensGenerated, count);

    public void AddPromptTokens(long count) => Interlocked.Add(ref _promptTokens, count);

    public void AddStep() => Interlocked.Increment(ref _steps);

    public void AddCompleted() => Interlocked.Increment(ref _completedSequences);

    /// <summary>A prompt of <paramref name="promptTokens"/> looked up in the prefix cache, <paramref name="hitTokens"/> of
    /// them found.</summary>
    public void AddPrefixLookup(long promptTokens, long hitTokens)
    {
        Interlocked.Add(ref _prefixLookupTokens, promptTokens);
        Interlocked.Add(ref _prefixHitTokens, hitTokens);
    }

    public void SetPrefixBlocks(int blocks) => Volatile.Write(ref _prefixBlocks, blocks);

    public void AddPrefixEvictions(long count) => Interlocked.Add(ref _prefixEvictions, count);

    public void AddSpeculation(int proposed, int accepted)
    {
        Interlocked.Add(ref _speculativeProposed, proposed);
        Interlocked.Add(ref _speculativeAccepted, accepted);
    }
}
