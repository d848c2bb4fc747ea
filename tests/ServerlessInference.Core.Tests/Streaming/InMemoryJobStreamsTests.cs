using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Streaming;

namespace ServerlessInference.Tests.Streaming;

/// <summary>What the embedded provider adds to the contract: TTL restarted by each append, no leftover wake-ups.</summary>
public sealed class InMemoryJobStreamsTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    private InMemoryJobStreams Streams(TimeSpan ttl) => new(Options.Create(new JobStreamOptions { Ttl = ttl }), _time);

    [Fact]
    public async Task AppendAsync_EachAppend_RestartsTheTtl()
    {
        var streams = Streams(TimeSpan.FromMinutes(10));
        await streams.AppendAsync("j", [JobStreamEvent.Token(0, 1, "a")], default);

        _time.Advance(TimeSpan.FromMinutes(9));
        await streams.AppendAsync("j", [JobStreamEvent.Token(1, 2, "b")], default);
        _time.Advance(TimeSpan.FromMinutes(9));

        Assert.Equal(2, (await streams.ReadAsync("j", default)).Count);
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Empty(await streams.ReadAsync("j", default));
    }

    [Fact]
    public async Task AppendAsync_ExpiredStream_IsRemovedAndCanStartAgain()
    {
        var streams = Streams(TimeSpan.FromMinutes(1));
        await streams.AppendAsync("old", [JobStreamEvent.Token(0, 1, "a"), JobStreamEvent.Token(1, 2, "b")], default);
        _time.Advance(TimeSpan.FromMinutes(1));

        var again = await streams.AppendAsync("old", [JobStreamEvent.Token(0, 9, "z")], default);

        Assert.Equal(new JobStreamAppend(1, 0, false), again);
        Assert.Equal([JobStreamEvent.Token(0, 9, "z")], await streams.ReadAsync("old", default));
    }

    [Fact]
    public async Task FollowAsync_Ended_LeavesNoWakeUpBehind()
    {
        var streams = Streams(TimeSpan.FromMinutes(1));
        using var cts = new CancellationTokenSource();
        var cancelled = Drain(streams.FollowAsync("a", -1, cts.Token));
        var completed = Drain(streams.FollowAsync("b", -1, default));
        Assert.Equal(2, streams.FollowedJobs);

        cts.Cancel();
        await streams.AppendAsync("b", [JobStreamEvent.Final(0, FinishReason.Stop)], default);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(TimeSpan.FromSeconds(10)));
        await completed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, streams.FollowedJobs);
    }

    [Fact]
    public void AddInMemoryJobStreams_BindsAndReplaces()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Inference:Streams:MaxEvents"] = "77",
        }).Build();
        var services = new ServiceCollection().AddSingleton<IConfiguration>(configuration);
        services.AddSingleton<IJobStreams>(new InMemoryJobStreams(Options.Create(new JobStreamOptions()), _time));

        services.AddInMemoryJobStreams().AddInMemoryJobStreams();

        using var provider = services.BuildServiceProvider();
        Assert.IsType<InMemoryJobStreams>(provider.GetRequiredService<IJobStreams>());
        Assert.Same(provider.GetRequiredService<InMemoryJobStreams>(), provider.GetRequiredService<IJobStreams>());
        Assert.Single(services, d => d.ServiceType == typeof(IJobStreams));
        Assert.Equal(77, provider.GetRequiredService<IOptions<JobStreamOptions>>().Value.MaxEvents);
    }

    private static async Task Drain(IAsyncEnumerable<JobStreamEvent> events)
    {
        await foreach (var _ in events)
        {
        }
    }
}
