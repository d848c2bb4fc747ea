using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ServerlessInference.Azure.Scaling;
using ServerlessInference.Scaling;

namespace ServerlessInference.Azure.Tests.Scaling;

public sealed class ContainerAppsOrchestratorOptionsTests
{
    private const string Section = "Inference:Orchestrator:ContainerApps";

    [Fact]
    public void Failures_NothingSet_NamesTheThreeRequiredSettings()
    {
        var failures = ContainerAppsOrchestratorOptionsValidator.Failures(new ContainerAppsOrchestratorOptions());

        Assert.Equal(3, failures.Count);
        Assert.Contains(failures, f => f.StartsWith($"{Section}:SubscriptionId", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith($"{Section}:ResourceGroup", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith($"{Section}:AppName", StringComparison.Ordinal));
    }

    [Fact]
    public void Failures_ValidSettings_None() => Assert.Empty(ContainerAppsOrchestratorOptionsValidator.Failures(Valid()));

    [Theory]
    [InlineData("Worker")]
    [InlineData("1worker")]
    [InlineData("worker-")]
    [InlineData("wor--ker")]
    [InlineData("a")]
    [InlineData("a-container-app-name-that-is-far-too-long")]
    public void Failures_BadAppName_NamesTheSetting(string appName)
    {
        var options = Valid();
        options.AppName = appName;

        Assert.StartsWith($"{Section}:AppName", Assert.Single(ContainerAppsOrchestratorOptionsValidator.Failures(options)));
    }

    [Theory]
    [InlineData("http://management.azure.com")]
    [InlineData("management.azure.com")]
    [InlineData("https://management.azure.com/subscriptions/x")]
    [InlineData("https://management.azure.com?x=1")]
    public void Failures_ManagementEndpointNotAnHttpsOrigin_NamesTheSetting(string endpoint)
    {
        var options = Valid();
        options.ManagementEndpoint = endpoint;

        Assert.StartsWith($"{Section}:ManagementEndpoint", Assert.Single(ContainerAppsOrchestratorOptionsValidator.Failures(options)));
    }

    [Fact]
    public void Failures_BadRetrySettings_NameEachSetting()
    {
        var options = Valid();
        options.MaxRetries = 11;
        options.RetryDelay = TimeSpan.Zero;

        var failures = ContainerAppsOrchestratorOptionsValidator.Failures(options);

        Assert.Contains(failures, f => f.StartsWith($"{Section}:MaxRetries", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith($"{Section}:RetryDelay", StringComparison.Ordinal));
    }

    [Fact]
    public void AddContainerAppsOrchestrator_MissingSettings_FailsValidationNamingThem()
    {
        using var provider = Provider(new Dictionary<string, string?> { [$"{Section}:AppName"] = "si-worker" });

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<ContainerAppsOrchestratorOptions>>().Value);

        Assert.Contains($"{Section}:SubscriptionId", ex.Message);
        Assert.Contains($"{Section}:ResourceGroup", ex.Message);
    }

    [Fact]
    public void AddContainerAppsOrchestrator_ValidSettings_ResolvesTheOrchestratorWithoutCallingArm()
    {
        using var provider = Provider(new Dictionary<string, string?>
        {
            [$"{Section}:SubscriptionId"] = "00000000-1111-2222-3333-444444444444",
            [$"{Section}:ResourceGroup"] = "rg",
            [$"{Section}:AppName"] = "si-worker",
            [$"{Section}:ManagedIdentityClientId"] = "11111111-2222-3333-4444-555555555555",
        });

        var orchestrator = Assert.IsType<ContainerAppsWorkerOrchestrator>(provider.GetRequiredService<IWorkerOrchestrator>());

        Assert.EndsWith("/resourceGroups/rg/providers/Microsoft.App/containerApps/si-worker?api-version=2025-07-01", orchestrator.AppUri.AbsoluteUri);
    }

    private static ServiceProvider Provider(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        return new ServiceCollection().AddLogging().AddSingleton<IConfiguration>(configuration).AddContainerAppsOrchestrator().BuildServiceProvider();
    }

    private static ContainerAppsOrchestratorOptions Valid() => new()
    {
        SubscriptionId = "00000000-1111-2222-3333-444444444444",
        ResourceGroup = "rg-inference.prod_(1)",
        AppName = "si-worker",
    };
}
