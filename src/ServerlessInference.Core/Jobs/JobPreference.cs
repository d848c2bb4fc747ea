namespace ServerlessInference.Jobs;

/// <summary>Which queued jobs a worker would rather take: the affinity keys it holds warm, in its fair order, and what
/// other workers hold. Passed to <see cref="IJobQueue.ReceiveAsync(int, TimeSpan, JobPreference, CancellationToken)"/>.</summary>
/// <remarks>
/// <para>An affinity key is <see cref="InferenceJob.AffinityKey"/>: the model's name, or <c>model#prefix</c> for a
/// generation job whose prompt prefix a worker may hold cached. The queue keeps one partition per key.</para>
/// <para>Selection, in this order (each step fills the batch from one key, oldest job first, before the next step). Keys
/// in <see cref="Closed"/> are never taken unless warm here. A key not warm here is due once its oldest job has waited
/// <see cref="WaitFor"/>:</para>
/// <list type="number">
/// <item>Warm: the keys in <see cref="Warm"/>, in the order given (the worker puts the key its fair rule owes most
/// first).</item>
/// <item>Free: due keys whose model (the part before <c>#</c>) is warm here, oldest first (a prompt prefix this worker
/// does not hold: no model load). Such a key waits only for a worker that holds that very key; any other key counts as
/// warm elsewhere when it or its model is in <see cref="WarmElsewhere"/> (<see cref="IsWarmElsewhere"/>), since taking
/// it here would load the model.</item>
/// <item>A receive that took warm or free jobs stops there: a batch is not filled up with other models' jobs, each of
/// which would cost a load evicting a model in demand (bench: loads 0.56 → 0.48 of affinity off).</item>
/// <item>One model to load: the oldest due cold key (in neither <see cref="Warm"/> nor <see cref="WarmElsewhere"/>), else
/// the oldest due overdue key (warm elsewhere), with that model's other due keys; never two models in one receive, so a
/// receive costs at most one load (one eviction from a full pool).</item>
/// <item>Otherwise nothing yet: the receive waits (up to its maxWait) for a new job or for a waiting one to become
/// due. A holder that stops heartbeating drops out of <see cref="WarmElsewhere"/>, so its keys turn cold.</item>
/// </list>
/// <para>Why waits: a worker busy with its own models leaves a job warm elsewhere to the worker holding it (whose fair
/// order serves it) for <see cref="AffinityWait"/>. A worker whose warm pool is full (a load evicts a model) takes a job
/// of a model not warm here only after <see cref="LoadWait"/>: a cold model's jobs gather into one load, and a worker
/// that is between two batches of its own models waits for them instead of evicting one of them for a single job. (With
/// cold keys taken at once and several models per receive, the multi-model bench loaded about two models per cold
/// visit, each evicting a model with demand of its own.)</para>
/// <para><see cref="None"/> is plain FIFO over every key, as before affinity existed.</para>
/// </remarks>
public sealed record JobPreference
{
    /// <summary>No preference: the oldest job first, whatever its key.</summary>
    public static JobPreference None { get; } = new();

    /// <summary>Affinity keys this worker holds warm, the one its fair rule owes most first.</summary>
    public IReadOnlyList<string> Warm { get; init; } = [];

    /// <summary>Affinity keys some other live worker holds warm: their jobs wait <see cref="AffinityWait"/> for it.</summary>
    public IReadOnlySet<string> WarmElsewhere { get; init; } = EmptySet;

    /// <summary>Keys this worker takes only when warm here (for example, a model already on its <c>max_workers</c>). A
    /// model named here closes its <c>model#prefix</c> keys too (<see cref="IsClosed"/>).</summary>
    public IReadOnlySet<string> Closed { get; init; } = EmptySet;

    /// <summary>How long a job whose key is warm elsewhere waits for that worker before any worker may take it.</summary>
    public TimeSpan AffinityWait { get; init; }

    /// <summary>How long a job of a model not warm here waits before this worker takes it when its warm pool is full, so
    /// that the load evicts a model in demand (zero when the pool has room for any model, or when the model it would
    /// evict has gone unused that long: cold jobs are then taken at once).</summary>
    public TimeSpan LoadWait { get; init; }

    /// <summary>How long the oldest job of a key not warm here must have waited before this worker takes it:
    /// nothing for a key of a model warm here that no other worker holds, <see cref="AffinityWait"/> for one warm
    /// elsewhere, plus <see cref="LoadWait"/> at least when its model is not warm here (taking it loads the model).</summary>
    /// <param name="warmElsewhere">Another worker holds what this one lacks: the key itself for a key of a model warm
    /// here, else the key or its model (<see cref="IsWarmElsewhere"/>).</param>
    /// <param name="modelWarmHere">The key's model is warm here (a prompt prefix this worker does not hold).</param>
    public TimeSpan WaitFor(bool warmElsewhere, bool modelWarmHere)
    {
        var affinity = warmElsewhere ? AffinityWait : TimeSpan.Zero;
        return modelWarmHere || affinity >= LoadWait ? affinity : LoadWait;
    }

    /// <summary>True for <see cref="None"/> (FIFO).</summary>
    public bool IsNone => ReferenceEquals(this, None);

    /// <summary>Whether <paramref name="affinityKey"/> is closed: it, or its model, is in <see cref="Closed"/>.</summary>
    public bool IsClosed(string affinityKey) =>
        Closed.Count > 0 && (Closed.Contains(affinityKey) || Closed.Contains(ModelOf(affinityKey)));

    /// <summary>Whether <paramref name="affinityKey"/>, or its model, is in <see cref="WarmElsewhere"/> (another worker
    /// holds the model warm, if not that prompt prefix).</summary>
    public bool IsWarmElsewhere(string affinityKey) =>
        WarmElsewhere.Count > 0 && (WarmElsewhere.Contains(affinityKey) || WarmElsewhere.Contains(ModelOf(affinityKey)));

    /// <summary>The model part of an affinity key (<c>model#prefix</c> → <c>model</c>).</summary>
    public static string ModelOf(string affinityKey)
    {
        var hash = affinityKey.IndexOf('#', StringComparison.Ordinal);
        return hash < 0 ? affinityKey : affinityKey[..hash];
    }

    private static readonly IReadOnlySet<string> EmptySet = new HashSet<string>(StringComparer.Ordinal);
}

/// <summary>Jobs of one model waiting and held by workers (a part of <see cref="QueueDepth"/>).</summary>
public readonly record struct ModelDepth(long Queued, long InFlight)
{
    public long Total => Queued + InFlight;
}
