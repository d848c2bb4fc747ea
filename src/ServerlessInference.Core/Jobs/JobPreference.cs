namespace ServerlessInference.Jobs;

/// <summary>Which queued jobs a worker would rather take: the affinity keys it holds warm, in its fair order, and what
/// other workers hold. Passed to <see cref="IJobQueue.ReceiveAsync(int, TimeSpan, JobPreference, CancellationToken)"/>.</summary>
/// <remarks>
/// <para>An affinity key is <see cref="InferenceJob.AffinityKey"/>: the model's name, or <c>model#prefix</c> for a
/// generation job whose prompt prefix a worker may hold cached. The queue keeps one partition per key.</para>
/// <para>Selection, in this order (each step fills the batch from one key, oldest job first, before the next step):</para>
/// <list type="number">
/// <item>Warm: the keys in <see cref="Warm"/>, in the order given (the worker puts the key its fair rule owes most
/// first). A receive that takes warm jobs stops there: a batch is not filled up with other models' jobs, each of
/// which would cost a load evicting a model in demand (bench: loads 0.56 → 0.48 of affinity off).</item>
/// <item>Cold: keys with waiting jobs that are in neither <see cref="WarmElsewhere"/> nor <see cref="Closed"/>; those whose
/// model (the part before <c>#</c>) is in <see cref="Warm"/> first, then oldest first.</item>
/// <item>Overdue: a key not in <see cref="Warm"/> and not closed whose oldest waiting job has waited at least
/// <see cref="AffinityWait"/> (oldest first). Last, so that a worker busy with its own models leaves such a job to the
/// worker holding it warm, whose fair order serves it; a worker with nothing warm or cold to do takes it (and loads
/// its model). A holder that stops heartbeating drops out of <see cref="WarmElsewhere"/>, so its keys turn cold.
/// (Overdue first made every worker take any job once queue time passed the wait, as it does under saturation: the
/// multi-model bench then loaded 0.73 as often as with affinity off.)</item>
/// <item>Otherwise nothing yet: the receive waits (up to its maxWait) for a new job or for a waiting one to become
/// overdue.</item>
/// </list>
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

    /// <summary>True for <see cref="None"/> (FIFO).</summary>
    public bool IsNone => ReferenceEquals(this, None);

    /// <summary>Whether <paramref name="affinityKey"/> is closed: it, or its model, is in <see cref="Closed"/>.</summary>
    public bool IsClosed(string affinityKey) =>
        Closed.Count > 0 && (Closed.Contains(affinityKey) || Closed.Contains(ModelOf(affinityKey)));

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
