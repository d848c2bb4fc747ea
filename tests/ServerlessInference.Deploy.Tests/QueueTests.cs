namespace ServerlessInference.Deploy.Tests;

/// <summary>The jobs queue's lease and delivery limit come from parameters, and both apps are told the same values.</summary>
[Collection(BicepCollection.Name)]
public sealed class QueueTests(BicepFixture bicep)
{
    [Theory]
    [InlineData("gpu", "PT30S", 5, "00:00:30")]
    [InlineData("cpu", "PT90S", 7, "00:01:30")]
    public void Queue_LockAndDeliveries_FollowParametersAndBothAppsAgree(string variant, string lockDuration, int maxDeliveryCount, string leaseDuration)
    {
        var snapshot = variant == "gpu" ? bicep.Gpu : bicep.Cpu;
        var queue = snapshot.Single("Microsoft.ServiceBus/namespaces/queues");
        Assert.EndsWith("/jobs", (string?)queue["name"], StringComparison.Ordinal);
        var properties = queue["properties"]!;
        Assert.Equal(lockDuration, (string?)properties["lockDuration"]);
        // One more than the apps' limit: the worker dead-letters with the reason before Service Bus would, silently.
        Assert.Equal(maxDeliveryCount + 1, (int)properties["maxDeliveryCount"]!);
        Assert.True((bool?)properties["deadLetteringOnMessageExpiration"]);
        Assert.False((bool?)properties["requiresSession"] ?? false);

        var count = maxDeliveryCount.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var settings in new[] { FunctionAppTests.AppSettings(snapshot), WorkerTests.Env(WorkerTests.Worker(snapshot)) })
        {
            Assert.Equal(leaseDuration, settings["Inference__Queue__LeaseDuration"]);
            Assert.Equal(count, settings["Inference__Queue__MaxDeliveryCount"]);
        }
    }

    [Fact]
    public void QueueParameters_Bounds_MatchServiceBusLimits()
    {
        var parameters = bicep.Compiled["parameters"]!;
        // Service Bus accepts a lock of 5 s to 5 min.
        Assert.Equal(5, (int)parameters["queueLockDurationSeconds"]!["minValue"]!);
        Assert.Equal(300, (int)parameters["queueLockDurationSeconds"]!["maxValue"]!);
        Assert.Equal(1, (int)parameters["queueMaxDeliveryCount"]!["minValue"]!);
    }
}
