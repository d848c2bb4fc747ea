using Microsoft.Extensions.Options;

namespace ServerlessInference.DevHost.Tests;

public sealed class StartupTests
{
    [Theory]
    [InlineData("Inference:Worker:MaxBatchSize", "0")]
    [InlineData("Inference:Scaling:MaxReplicas", "0")]
    [InlineData("Inference:Gateway:MaxBodyBytes", "-5")]
    [InlineData("Inference:Queue:MaxDeliveryCount", "0")]
    [InlineData("Inference:Auth:MaxConcurrentJobs", "-1")]
    [InlineData("Inference:Auth:ManagementUrl", "port 9090 please")]
    [InlineData("Inference:Auth:Keys:a000000000000001:Sha256", "not-a-hash")]
    [InlineData("Inference:Webhooks:Secret", "not-a-whsec-secret")]
    [InlineData("Inference:Webhooks:Secret", "whsec_c2hvcnQ=")]
    [InlineData("Inference:Webhooks:MaxAttempts", "0")]
    public void Start_BadSetting_FailsNamingTheSetting(string setting, string value)
    {
        var root = Path.Combine(Path.GetTempPath(), "si-startup-tests", Guid.NewGuid().ToString("N"));
        using var host = new DevHostFactory(root, new Dictionary<string, string?>
        {
            [setting] = value,
            ["Inference:DemoModels:Seed"] = "false",
        });

        var ex = Assert.ThrowsAny<Exception>(() => host.Server);

        // Start-up fails with the options validation naming the setting (possibly wrapped by the host).
        Assert.Contains(nameof(OptionsValidationException), ex.ToString());
        Assert.Contains(setting, ex.ToString());
    }

    [Fact]
    public void Start_DemoModelsSeedNotABoolean_FailsAtStartNamingTheSetting()
    {
        var root = Path.Combine(Path.GetTempPath(), "si-startup-tests", Guid.NewGuid().ToString("N"));
        using var host = new DevHostFactory(root, new Dictionary<string, string?> { ["Inference:DemoModels:Seed"] = "sometimes" });

        var ex = Assert.ThrowsAny<Exception>(() => host.Server);

        Assert.Contains("Inference:DemoModels:Seed", ex.ToString());
    }

    [Fact]
    public void Start_UnknownQueueProvider_FailsNamingTheSetting()
    {
        var root = Path.Combine(Path.GetTempPath(), "si-startup-tests", Guid.NewGuid().ToString("N"));
        using var host = new DevHostFactory(root, new Dictionary<string, string?> { ["Inference:Queue:Provider"] = "Kafka" });

        var ex = Assert.ThrowsAny<Exception>(() => host.Server);

        Assert.Contains("Inference:Queue:Provider", ex.ToString());
    }
}
