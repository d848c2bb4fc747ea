using Microsoft.Extensions.Options;
using ServerlessInference.Gateway;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Scaling;
using ServerlessInference.Streaming;
using ServerlessInference.Workers;

namespace ServerlessInference.Core.Tests.Hosting;

/// <summary>Every options class's source-generated validator names the full setting in its message.</summary>
public sealed class OptionsValidationTests
{
    public static TheoryData<Func<ValidateOptionsResult>, string> BadSettings => new()
    {
        { () => new GatewayOptionsValidator().Validate(null, new GatewayOptions { MaxBodyBytes = -5 }), "Inference:Gateway:MaxBodyBytes must be between 1 and 2147483647" },
        { () => new GatewayOptionsValidator().Validate(null, new GatewayOptions { DefaultWait = TimeSpan.FromMinutes(10) }), "Inference:Gateway:DefaultWait must be between 0 and Inference:Gateway:MaxWait" },
        { () => new JobQueueOptionsValidator().Validate(null, new JobQueueOptions { MaxDeliveryCount = 0 }), "Inference:Queue:MaxDeliveryCount must be at least 1" },
        { () => new JobQueueOptionsValidator().Validate(null, new JobQueueOptions { LeaseDuration = TimeSpan.Zero }), "Inference:Queue:LeaseDuration must be positive" },
        { () => new ResultStoreOptionsValidator().Validate(null, new ResultStoreOptions { Ttl = TimeSpan.Zero }), "Inference:Results:Ttl must be positive" },
        { () => new JobQueueOptionsValidator().Validate(null, new JobQueueOptions { MaxQueuedBytes = 0 }), "Inference:Queue:MaxQueuedBytes must be positive" },
        { () => new ResultStoreOptionsValidator().Validate(null, new ResultStoreOptions { AnsweredRetention = TimeSpan.Zero }), "Inference:Results:AnsweredRetention must be positive" },
        { () => new ResultStoreOptionsValidator().Validate(null, new ResultStoreOptions { MaxRetainedRecords = 0 }), "Inference:Results:MaxRetainedRecords must be positive" },
        { () => new ResultStoreOptionsValidator().Validate(null, new ResultStoreOptions { MaxRetainedBytes = -1 }), "Inference:Results:MaxRetainedBytes must be positive" },
        { () => new WorkerOptionsValidator().Validate(null, new WorkerOptions { MaxBatchSize = 0 }), "Inference:Worker:MaxBatchSize must be between 1 and 4096" },
        { () => new WorkerOptionsValidator().Validate(null, new WorkerOptions { HeartbeatInterval = TimeSpan.Zero }), "Inference:Worker:HeartbeatInterval must be at least 2 ms" },
        { () => new WarmPoolOptionsValidator().Validate(null, new WarmPoolOptions { CacheDirectory = "" }), "Inference:WarmPool:CacheDirectory must name a folder" },
        { () => new ModelStoreOptionsValidator().Validate(null, new ModelStoreOptions { Root = " " }), "Inference:ModelStore:Root must name a folder" },
        { () => new ScalingOptionsValidator().Validate(null, new ScalingOptions { MaxReplicas = 0 }), "Inference:Scaling:MaxReplicas must be at least 1" },
        { () => new ScalingOptionsValidator().Validate(null, new ScalingOptions { MinReplicas = 5, MaxReplicas = 4 }), "Inference:Scaling:MinReplicas must be between 0 and Inference:Scaling:MaxReplicas" },
        { () => new JobStreamOptionsValidator().Validate(null, new JobStreamOptions { MaxEvents = 0 }), "Inference:Streams:MaxEvents must be between 1 and 1000000" },
        { () => new JobStreamOptionsValidator().Validate(null, new JobStreamOptions { Ttl = TimeSpan.Zero }), "Inference:Streams:Ttl must be positive" },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public void Validate_BadSetting_FailsNamingIt(Func<ValidateOptionsResult> validate, string expected)
    {
        var result = validate();

        Assert.True(result.Failed);
        Assert.Contains(expected, result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_Defaults_Succeed()
    {
        Assert.True(new GatewayOptionsValidator().Validate(null, new GatewayOptions()).Succeeded);
        Assert.True(new JobQueueOptionsValidator().Validate(null, new JobQueueOptions()).Succeeded);
        Assert.True(new ResultStoreOptionsValidator().Validate(null, new ResultStoreOptions()).Succeeded);
        Assert.True(new WorkerOptionsValidator().Validate(null, new WorkerOptions()).Succeeded);
        Assert.True(new WarmPoolOptionsValidator().Validate(null, new WarmPoolOptions()).Succeeded);
        Assert.True(new ModelStoreOptionsValidator().Validate(null, new ModelStoreOptions()).Succeeded);
        Assert.True(new ScalingOptionsValidator().Validate(null, new ScalingOptions()).Succeeded);
        Assert.True(new JobStreamOptionsValidator().Validate(null, new JobStreamOptions()).Succeeded);
    }
}
