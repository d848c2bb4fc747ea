using ServerlessInference.Jobs;
using ServerlessInference.Streaming;

namespace ServerlessInference.Testing.Contracts;

/// <summary>What every <see cref="IJobStreams"/> must do. Derive once per provider.</summary>
public abstract class JobStreamsContract : ContractClock
{
    /// <summary>A TTL short enough to wait out: long on a fake clock, about a second on a server's clock.</summary>
    protected virtual TimeSpan ShortTtl => TimeSpan.FromMinutes(5);

    /// <summary>A fresh provider no other test sees.</summary>
    protected abstract ValueTask<IJobStreams> CreateStreamsAsync(JobStreamOptions options);

    private ValueTask<IJobStreams> StreamsAsync(int maxEvents = 1000) =>
        CreateStreamsAsync(new JobStreamOptions { MaxEvents = maxEvents, Ttl = TimeSpan.FromMinutes(10) });

    private static string NewJobId() => InferenceJob.NewId();

    /// <summary>Token events <paramref name="from"/>.. with ids <paramref name="tokenBase"/> + sequence.</summary>
    protected static JobStreamEvent[] Tokens(long from, int count, int tokenBase = 100) =>
        [.. Enumerable.Range(0, count).Select(i => JobStreamEvent.Token(from + i, tokenBase + (int)from + i, $"t{from + i}"))];

    private static async Task<List<JobStreamEvent>> CollectAsync(IAsyncEnumerable<JobStreamEvent> events)
    {
        var list = new List<JobStreamEvent>();
        await foreach (var e in events)
        {
            list.Add(e);
        }

        return list;
    }

    private static long[] Sequences(IEnumerable<JobStreamEvent> events) => [.. events.Select(e => e.Sequence)];

    private static long[] Range(long from, int count) => [.. Enumerable.Range(0, count).Select(i => from + i)];

    [Fact]
    public async Task AppendAsync_ThenRead_ReturnsEveryEventAsWritten()
    {
        var streams = await StreamsAsync();
        var job = NewJobId();
        JobStreamEvent[] written =
        [
            JobStreamEvent.Token(0, 15496, "Hello"),
            JobStreamEvent.Token(1, 11, ""),
            JobStreamEvent.Token(2, 995, " wörld\n\"é\" 🙂"),
            JobStreamEvent.Final(3, FinishReason.Error, "the model failed: out of memory"),
        ];

        var first = await streams.AppendAsync(job, written[..2], default);
        var second = await streams.AppendAsync(job, written[2..], default);

        Assert.Equal(new JobStreamAppend(2, 1, false), first);
        Assert.Equal(new JobStreamAppend(2, 3, true), second);
        Assert.Equal(written, await streams.ReadAsync(job, default));
    }

    [Fact]
    public async Task ReadAsync_Unknown_ReturnsNothing()
    {
        var streams = await StreamsAsync();

        Assert.Empty(await streams.ReadAsync(NewJobId(), default));
        Assert.Equal(new JobStreamAppend(0, -1, false), await streams.AppendAsync(NewJobId(), [], default));
    }

    [Fact]
    public async Task AppendAsync_AlreadyStored_IsIgnored()
    {
        var streams = await StreamsAsync();
        var job = NewJobId();
        await streams.AppendAsync(job, Tokens(0, 5), default);

        var same = await streams.AppendAsync(job, Tokens(0, 5), default);
        var prefix = await streams.AppendAsync(job, Tokens(1, 2, tokenBase: 900), default);
        var overlapping = await streams.AppendAsync(job, Tokens(3, 4, tokenBase: 900), default);

        Assert.Equal(new JobStreamAppend(0, 4, false), same);
        Assert.Equal(new JobStreamAppend(0, 4, false), prefix);
        Assert.Equal(new JobStreamAppend(2, 6, false), overlapping);
        var stored = await streams.ReadAsync(job, default);
        Assert.Equal(Range(0, 7), Sequences(stored));
        // The first writer of a sequence wins; only the new tail of the overlapping batch was taken.
        Assert.Equal([.. Tokens(0, 5), .. Tokens(5, 2, tokenBase: 900)], stored);
    }

    [Fact]
    public async Task AppendAsync_Gap_ThrowsAndStoresNothing()
    {
        var streams = await StreamsAsync();
        var job = NewJobId();

        var onEmpty = await Assert.ThrowsAsync<JobStreamException>(() => streams.AppendAsync(job, Tokens(1, 2), default).AsTask());
        await streams.AppendAsync(job, Tokens(0, 3), default);
        var later = await Assert.ThrowsAsync<JobStreamException>(() => streams.AppendAsync(job, Tokens(4, 2), default).AsTask());

        Assert.Equal(JobStreamRejection.Gap, onEmpty.Rejection);
        Assert.Equal(-1, onEmpty.LastSequence);
        Assert.Equal(JobStreamRejection.Gap, later.Rejection);
        Assert.Equal(2, later.LastSequence);
        Assert.Equal(job, later.JobId);
        Assert.Equal(Range(0, 3), Sequences(await streams.ReadAsync(job, default)));
    }

    [Fact]
    public async Task AppendAsync_MalformedBatch_ThrowsArgumentException()
    {
        var streams = await StreamsAsync();
        var job = NewJobId();

        await Assert.ThrowsAsync<ArgumentException>(() => streams.AppendAsync(job, [JobStreamEvent.Token(0, 1, "a"), JobStreamEvent.Token(2, 1, "b")], default).AsTask());
        await Assert.ThrowsAsync<ArgumentException>(() => streams.AppendAsync(job, [JobStreamEvent.Final(0, FinishReason.Stop), JobStreamEvent.Token(1, 1, "b")], default).AsTask());
        await Assert.ThrowsAsync<ArgumentException>(() => streams.AppendAsync(job, [JobStreamEvent.Token(-1, 1, "a")], default).AsTask());
        await Assert.ThrowsAsync<ArgumentException>(() => streams.AppendAsync(job, [new JobStreamEvent(0, 1, "a", Error: "no finish")], default).AsTask());
        await Assert.ThrowsAsync<ArgumentException>(() => streams.AppendAsync(job, [new JobStreamEvent(0, 1, null!)], default).AsTask());
        Assert.Empty(await streams.ReadAsync(job, default));
    }

    [Fact]
    public async Task AppendAsync_AfterFinal_ThrowsButAResentFinalIsIgnored()
    {
        var streams = await StreamsAsync();
        var job = NewJobId();
        await streams.AppendAsync(job, [.. Tokens(0, 2), JobStreamEvent.Final(2, FinishReason.Eos)], default);

        var resent = await streams.AppendAsync(job, [JobStreamEvent.Token(1, 7, "x"), JobStreamEvent.Final(2, FinishReason.Length)], default);
        var after = await Assert.ThrowsAsync<JobStreamException>(() => streams.AppendAsync(job, [JobStreamEvent.Token(2, 7, "x"), JobStreamEvent.Token(3, 8, "y")], default).AsTask());

        Assert.Equal(new JobStreamAppend(0, 2, true), resent);
        Assert.Equal(JobStreamRejection.Ended, after.Rejection);
        var stored = await streams.ReadAsync(job, default);
        Assert.Equal(Range(0, 3), Sequences(stored));
        Assert.Equal(FinishReason.Eos, stored[^1].Finish);
        Assert.Null(stored[^1].TokenId);
    }

    [Fact]
    public async Task AppendAsync_PastMaxEvents_ThrowsButTheFinalEventFits()
    {
        var streams = await StreamsAsync(maxEvents: 4);
        var job = NewJobId();
        await streams.AppendAsync(job, Tokens(0, 2), default);

        var crossing = await Assert.ThrowsAsync<JobStreamException>(() => streams.AppendAsync(job, Tokens(1, 4), default).AsTask());
        var filled = await streams.AppendAsync(job, Tokens(2, 2), default);
        var past = await Assert.ThrowsAsync<JobStreamException>(() => streams.AppendAsync(job, Tokens(4, 1), default).AsTask());
        var ended = await streams.AppendAsync(job, [JobStreamEvent.Final(4, FinishReason.Length)], default);

        Assert.Equal(JobStreamRejection.Full, crossing.Rejection);
        Assert.Equal(JobStreamRejection.Full, past.Rejection);
        Assert.Equal(new JobStreamAppend(2, 3, false), filled);
        Assert.Equal(new JobStreamAppend(1, 4, true), ended);
        Assert.Equal(Range(0, 5), Sequences(await streams.ReadAsync(job, default)));
    }

    [Fact]
    public async Task AppendAsync_TwoWritersOfTheSameSequences_StoreOneCopyOfEach()
    {
        // A zombie worker and the worker that took its job over write the same positions at once, in different batches.
        var streams = await StreamsAsync();
        var job = NewJobId();
        const int Count = 60;

        async Task<int> WriteAsync(int batch, int tokenBase)
        {
            await Task.Yield();
            var stored = 0;
            for (var seq = 0; seq < Count; seq += batch)
            {
                stored += (await streams.AppendAsync(job, Tokens(seq, Math.Min(batch, Count - seq), tokenBase), default)).Appended;
            }

            stored += (await streams.AppendAsync(job, [JobStreamEvent.Final(Count, FinishReason.Stop)], default)).Appended;
            return stored;
        }

        var writers = await Within(Task.WhenAll(Task.Run(() => WriteAsync(1, 1000)), Task.Run(() => WriteAsync(7, 2000))), "both writers");

        Assert.Equal(Count + 1, writers.Sum());
        var stored = await streams.ReadAsync(job, default);
        Assert.Equal(Range(0, Count + 1), Sequences(stored));
        Assert.All(stored.Take(Count), e => Assert.True(e.TokenId == 1000 + e.Sequence || e.TokenId == 2000 + e.Sequence, $"event {e.Sequence} holds {e.TokenId}"));
        Assert.True(stored[^1].IsFinal);
    }

    [Fact]
    public async Task FollowAsync_FromTheStart_WaitsThenSeesEveryEventInOrderAndEndsAtTheFinal()
    {
        var streams = await StreamsAsync();
        var job = NewJobId();
        await using var follower = streams.FollowAsync(job, -1, default).GetAsyncEnumerator();
        var waiting = follower.MoveNextAsync().AsTask();
        Assert.False(waiting.IsCompleted);

        var seen = new List<JobStreamEvent>();
        await streams.AppendAsync(job, Tokens(0, 3), default);
        Assert.True(await Within(waiting, "the first event"));
        seen.Add(follower.Current);
        while (seen.Count < 3)
        {
            Assert.True(await Within(follower.MoveNextAsync().AsTask(), "an event"));
            seen.Add(follower.Current);
        }

        var next = follower.MoveNextAsync().AsTask();
        await streams.AppendAsync(job, Tokens(3, 2), default);
        await streams.AppendAsync(job, [JobStreamEvent.Final(5, FinishReason.Stop)], default);
        while (await Within(next, "an event"))
        {
            seen.Add(follower.Current);
            next = follower.MoveNextAsync().AsTask();
        }

        Assert.Equal(Range(0, 6), Sequences(seen));
        Assert.Equal(await streams.ReadAsync(job, default), seen);
    }

    [Fact]
    public async Task FollowAsync_AfterASequence_YieldsExactlyTheLaterEvents()
    {
        // A client reconnecting with Last-Event-ID: 3 while the job is still running.
        var streams = await StreamsAsync();
        var job = NewJobId();
        await streams.AppendAsync(job, Tokens(0, 6), default);

        var following = CollectAsync(streams.FollowAsync(job, 3, default));
        await streams.AppendAsync(job, Tokens(4, 5), default);
        await streams.AppendAsync(job, [JobStreamEvent.Token(9, 1, "z"), JobStreamEvent.Final(10, FinishReason.Length)], default);

        var seen = await Within(following, "the follower to end");
        Assert.Equal(Range(4, 7), Sequences(seen));
        Assert.Equal((await streams.ReadAsync(job, default)).Skip(4), seen);
    }

    [Fact]
    public async Task FollowAsync_AfterTheEnd_ReplaysAndCompletes()
    {
        var streams = await StreamsAsync();
        var job = NewJobId();
        await streams.AppendAsync(job, [.. Tokens(0, 4), JobStreamEvent.Final(4, FinishReason.Cancelled)], default);

        var all = await Within(CollectAsync(streams.FollowAsync(job, -1, default)), "the replay");
        var tail = await Within(CollectAsync(streams.FollowAsync(job, 2, default)), "the replay from 2");
        var none = await Within(CollectAsync(streams.FollowAsync(job, 4, default)), "the replay after the final event");
        var beyond = await Within(CollectAsync(streams.FollowAsync(job, 40, default)), "the replay after the end");

        Assert.Equal(await streams.ReadAsync(job, default), all);
        Assert.Equal(Range(3, 2), Sequences(tail));
        Assert.Empty(none);
        Assert.Empty(beyond);
    }

    [Fact]
    public async Task FollowAsync_ManyFollowersOfSomeJobs_EachSeesItsOwnJobOnly()
    {
        var streams = await StreamsAsync();
        var jobs = Enumerable.Range(0, 3).Select(_ => NewJobId()).ToArray();
        var followers = jobs.SelectMany(j => new[] { j, j }).Select(j => CollectAsync(streams.FollowAsync(j, -1, default))).ToArray();

        for (var i = 0; i < jobs.Length; i++)
        {
            await streams.AppendAsync(jobs[i], Tokens(0, i + 2, tokenBase: 1000 * i), default);
        }

        for (var i = 0; i < jobs.Length; i++)
        {
            await streams.AppendAsync(jobs[i], [JobStreamEvent.Final(i + 2, FinishReason.Eos)], default);
        }

        var seen = await Within(Task.WhenAll(followers), "every follower to end");
        for (var i = 0; i < seen.Length; i++)
        {
            Assert.Equal(await streams.ReadAsync(jobs[i / 2], default), seen[i]);
            Assert.Equal(Range(0, i / 2 + 3), Sequences(seen[i]));
        }
    }

    [Fact]
    public async Task FollowAsync_Cancelled_Ends()
    {
        var streams = await StreamsAsync();
        var job = NewJobId();
        await streams.AppendAsync(job, Tokens(0, 2), default);
        using var cts = new CancellationTokenSource();
        var seen = new List<JobStreamEvent>();

        async Task FollowAsync()
        {
            await foreach (var e in streams.FollowAsync(job, -1, cts.Token))
            {
                seen.Add(e);
                if (seen.Count == 2)
                {
                    cts.Cancel();
                }
            }
        }

        await Within(Assert.ThrowsAnyAsync<OperationCanceledException>(FollowAsync), "the follower to stop");
        Assert.Equal(Range(0, 2), Sequences(seen));

        // Cancelled while waiting, too.
        using var waiting = new CancellationTokenSource();
        var idle = CollectAsync(streams.FollowAsync(NewJobId(), -1, waiting.Token));
        Assert.False(idle.IsCompleted);
        waiting.Cancel();
        await Within(Assert.ThrowsAnyAsync<OperationCanceledException>(() => idle), "the idle follower to stop");
    }

    [Fact]
    public async Task ReadAsync_AfterTtl_ReturnsNothing()
    {
        var streams = await CreateStreamsAsync(new JobStreamOptions { MaxEvents = 100, Ttl = ShortTtl });
        var job = NewJobId();
        await streams.AppendAsync(job, [.. Tokens(0, 3), JobStreamEvent.Final(3, FinishReason.Stop)], default);
        Assert.Equal(4, (await streams.ReadAsync(job, default)).Count);

        await AdvanceAsync(ShortTtl);

        await EventuallyAsync(() => streams.ReadAsync(job, default).AsTask(), e => e.Count == 0, "the stream to expire");
        // Gone means gone: a late writer cannot resume it in the middle.
        var late = await Assert.ThrowsAsync<JobStreamException>(() => streams.AppendAsync(job, Tokens(4, 1), default).AsTask());
        Assert.Equal(JobStreamRejection.Gap, late.Rejection);
    }
}
