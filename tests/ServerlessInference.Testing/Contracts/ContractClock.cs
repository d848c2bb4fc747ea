using System.Diagnostics;
using ServerlessInference.Jobs;

namespace ServerlessInference.Testing.Contracts;

/// <summary>What every contract suite needs from its provider besides the provider: a clock it can move on, and a
/// bound on how long a condition may take to come true.</summary>
/// <remarks>An embedded provider runs on a <c>FakeTimeProvider</c> and <see cref="AdvanceAsync"/> moves it; a
/// provider whose clock is a server's (Redis idle times and TTLs) runs on real time and <see cref="AdvanceAsync"/>
/// waits. Assertions never sleep in place of a condition: they poll it with <see cref="EventuallyAsync{T}"/> up to
/// <see cref="Patience"/> of real time.</remarks>
public abstract class ContractClock : IAsyncLifetime
{
    private readonly List<object> _created = [];

    /// <summary>The clock the provider under test uses (for timestamps the test writes, like <c>SubmittedAt</c>).</summary>
    protected abstract TimeProvider Time { get; }

    /// <summary>Lets <paramref name="duration"/> pass for the provider: advances a fake clock, or waits for real.</summary>
    protected abstract ValueTask AdvanceAsync(TimeSpan duration);

    /// <summary>The longest a condition may take to come true, in real time.</summary>
    protected virtual TimeSpan Patience => TimeSpan.FromSeconds(10);

    /// <summary>How far <see cref="EventuallyAsync{T}"/> lets time pass between two looks.</summary>
    protected virtual TimeSpan PollStep => TimeSpan.FromMilliseconds(25);

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual async Task DisposeAsync()
    {
        foreach (var created in _created)
        {
            switch (created)
            {
                case IAsyncDisposable asyncDisposable:
                    await asyncDisposable.DisposeAsync().ConfigureAwait(false);
                    break;
                case IDisposable disposable:
                    disposable.Dispose();
                    break;
            }
        }
    }

    /// <summary>Remembers a provider so it is disposed after the test.</summary>
    protected T Track<T>(T created)
        where T : notnull
    {
        _created.Add(created);
        return created;
    }

    /// <summary>Looks at <paramref name="probe"/> until <paramref name="done"/> holds, letting <see cref="PollStep"/>
    /// pass between looks; fails after <see cref="Patience"/> of real time.</summary>
    protected async Task<T> EventuallyAsync<T>(Func<Task<T>> probe, Func<T, bool> done, string what)
    {
        var until = Stopwatch.GetTimestamp() + (long)(Patience.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            var value = await probe().ConfigureAwait(false);
            if (done(value))
            {
                return value;
            }

            if (Stopwatch.GetTimestamp() > until)
            {
                Assert.Fail($"{what}: not within {Patience.TotalSeconds:0.#} s");
            }

            await AdvanceAsync(PollStep).ConfigureAwait(false);
        }
    }

    /// <summary>Waits for <paramref name="task"/> up to <see cref="Patience"/> of real time.</summary>
    protected async Task<T> Within<T>(Task<T> task, string what)
    {
        try
        {
            return await task.WaitAsync(Patience).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{what}: not within {Patience.TotalSeconds:0.#} s");
            throw;
        }
    }
}

/// <summary>Jobs and records for the suites.</summary>
public static class ContractJobs
{
    public static InferenceRequest Request(params float[] values) => new()
    {
        Inputs = [InferTensor.Create("x", [values.Length / 4, 4], values)],
    };

    public static InferenceJob Job(DateTimeOffset now, float seed = 1, string model = "m", TimeSpan? deadline = null) => new()
    {
        Id = InferenceJob.NewId(),
        Model = model,
        Version = "1",
        Request = Request(seed, seed + 1, seed + 2, seed + 3),
        SubmittedAt = now,
        Deadline = now + (deadline ?? TimeSpan.FromMinutes(10)),
    };

    public static JobRecord Done(InferenceJob job, DateTimeOffset now, JobStatus status = JobStatus.Succeeded, string? error = null, InferenceResponse? response = null) => new()
    {
        Id = job.Id,
        Model = job.Model,
        Version = job.Version,
        Status = status,
        SubmittedAt = job.SubmittedAt,
        CompletedAt = now,
        Error = error,
        Response = response,
    };

    public static InferenceResponse Response(string model, params float[] values) => new()
    {
        ModelName = model,
        ModelVersion = "1",
        Outputs = [InferTensor.Create("y", [values.Length / 4, 4], values)],
    };
}
