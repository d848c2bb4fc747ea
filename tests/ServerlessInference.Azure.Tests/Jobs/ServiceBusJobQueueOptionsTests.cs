using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using ServerlessInference.Hosting.Providers;
using ServerlessInference.Azure.Jobs;
using ServerlessInference.Embedded;
using ServerlessInference.Hosting;
using ServerlessInference.Jobs;

namespace ServerlessInference.Azure.Tests.Jobs;

public sealed class ServiceBusJobQueueOptionsTests
{
    private const string EmulatorConnectionString =
        "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;";

    [Fact]
    public void Failures_NeitherConnectionStringNorNamespace_NamesBothSettings()
    {
        var failure = Assert.Single(ServiceBusJobQueueOptionsValidator.Failures(new ServiceBusJobQueueOptions()));

        Assert.Contains("Inference:ServiceBus:ConnectionString", failure, StringComparison.Ordinal);
        Assert.Contains("Inference:ServiceBus:FullyQualifiedNamespace", failure, StringComparison.Ordinal);
        Assert.Contains("neither is set", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Failures_BothConnectionStringAndNamespace_SaysExactlyOne()
    {
        var failure = Assert.Single(ServiceBusJobQueueOptionsValidator.Failures(new ServiceBusJobQueueOptions
        {
            ConnectionString = EmulatorConnectionString,
            FullyQualifiedNamespace = "ns.servicebus.windows.net",
        }));

        Assert.Contains("exactly one", failure, StringComparison.Ordinal);
        Assert.Contains("both are set", failure, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("SharedAccessKey=s3cr3t-value")]
    [InlineData("Endpoint=sb://ns.servicebus.windows.net;SharedAccessKeyName=send")]
    [InlineData("this is s3cr3t and not a connection string")]
    public void Failures_UnusableConnectionString_NamesSettingWithoutEchoingIt(string connectionString)
    {
        var failure = Assert.Single(ServiceBusJobQueueOptionsValidator.Failures(new ServiceBusJobQueueOptions { ConnectionString = connectionString }));

        Assert.StartsWith("Inference:ServiceBus:ConnectionString ", failure, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3t", failure, StringComparison.Ordinal);
        Assert.DoesNotContain(connectionString, failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Failures_ConnectionStringScopedToAnotherEntity_NamesBothSettings()
    {
        var failure = Assert.Single(ServiceBusJobQueueOptionsValidator.Failures(new ServiceBusJobQueueOptions
        {
            ConnectionString = EmulatorConnectionString + "EntityPath=orders",
            QueueName = "jobs",
        }));

        Assert.Contains("'orders'", failure, StringComparison.Ordinal);
        Assert.Contains("Inference:ServiceBus:QueueName", failure, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sb://ns.servicebus.windows.net")]
    [InlineData("https://ns.servicebus.windows.net/")]
    [InlineData("ns.servicebus.windows.net:5671")]
    [InlineData("not a host")]
    public void Failures_NamespaceNotAHostName_NamesSetting(string value)
    {
        var failure = Assert.Single(ServiceBusJobQueueOptionsValidator.Failures(new ServiceBusJobQueueOptions { FullyQualifiedNamespace = value }));

        Assert.Contains("Inference:ServiceBus:FullyQualifiedNamespace must be a host name", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Failures_BadAdministrationConnectionString_NamesItWithoutEchoingIt()
    {
        var failure = Assert.Single(ServiceBusJobQueueOptionsValidator.Failures(new ServiceBusJobQueueOptions
        {
            ConnectionString = EmulatorConnectionString,
            AdministrationConnectionString = "s3cr3t",
        }));

        Assert.StartsWith("Inference:ServiceBus:AdministrationConnectionString ", failure, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3t", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Failures_OutOfRangeNumbers_NameEachSetting()
    {
        var failures = ServiceBusJobQueueOptionsValidator.Failures(new ServiceBusJobQueueOptions
        {
            FullyQualifiedNamespace = "ns.servicebus.windows.net",
            QueueName = " ",
            MaxRetries = -1,
            TryTimeout = TimeSpan.Zero,
            MinimumReceiveWait = TimeSpan.Zero,
            DepthCacheDuration = TimeSpan.FromSeconds(-1),
            DepthPeekLimit = 0,
            AdministrationRetryInterval = TimeSpan.FromSeconds(-1),
            ExpiryGrace = TimeSpan.FromSeconds(-1),
            UnavailableRetryAfterSeconds = 0,
        });

        foreach (var setting in new[] { "QueueName", "MaxRetries", "TryTimeout", "MinimumReceiveWait", "DepthCacheDuration", "DepthPeekLimit", "AdministrationRetryInterval", "ExpiryGrace", "UnavailableRetryAfterSeconds" })
        {
            Assert.Contains(failures, f => f.StartsWith($"Inference:ServiceBus:{setting} ", StringComparison.Ordinal));
        }

        Assert.Equal(9, failures.Count);
    }

    [Fact]
    public void Failures_EmulatorOrNamespaceAlone_AreValid()
    {
        Assert.Empty(ServiceBusJobQueueOptionsValidator.Failures(new ServiceBusJobQueueOptions
        {
            ConnectionString = EmulatorConnectionString,
            AdministrationConnectionString = EmulatorConnectionString.Replace("sb://localhost", "sb://localhost:5300", StringComparison.Ordinal),
        }));
        Assert.Empty(ServiceBusJobQueueOptionsValidator.Failures(new ServiceBusJobQueueOptions { FullyQualifiedNamespace = "ns.servicebus.windows.net", ManagedIdentityClientId = Guid.NewGuid().ToString() }));
        Assert.Empty(ServiceBusJobQueueOptionsValidator.Failures(new ServiceBusJobQueueOptions { ConnectionString = EmulatorConnectionString + "EntityPath=jobs" }));
    }

    [Fact]
    public async Task CreateClients_Namespace_BuildsClientsForItWithoutCallingServiceBus()
    {
        var (client, administration) = ServiceBusJobQueue.CreateClients(new ServiceBusJobQueueOptions { FullyQualifiedNamespace = "ns.servicebus.windows.net" });
        await using var _ = client;

        Assert.Equal("ns.servicebus.windows.net", client.FullyQualifiedNamespace);
        Assert.NotNull(administration);
    }

    [Fact]
    public async Task AddServiceBusJobQueue_ServiceBusProviderWithoutSettings_FailsAtStartNamingSettings()
    {
        using var host = Host(new() { ["Inference:Queue:Provider"] = "ServiceBus" });

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("Inference:ServiceBus:ConnectionString", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Inference:ServiceBus:FullyQualifiedNamespace", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddServiceBusJobQueue_ServiceBusProvider_StartsWithoutConnectingAndResolvesTheQueue()
    {
        using var host = Host(new()
        {
            ["Inference:Queue:Provider"] = "servicebus",
            ["Inference:Queue:MaxDeliveryCount"] = "4",
            ["Inference:ServiceBus:ConnectionString"] = EmulatorConnectionString,
            ["Inference:ServiceBus:QueueName"] = "inference-jobs",
        });

        await host.StartAsync();

        var queue = Assert.IsType<ServiceBusJobQueue>(host.Services.GetRequiredService<IJobQueue>());
        Assert.Same(queue, host.Services.GetRequiredService<ServiceBusJobQueue>());
        Assert.Equal(4, queue.MaxDeliveryCount);
        Assert.Equal("inference-jobs", host.Services.GetRequiredService<IOptions<ServiceBusJobQueueOptions>>().Value.QueueName);
        await host.StopAsync();
    }

    [Fact]
    public void AddServiceBusJobQueue_EmbeddedProvider_LeavesTheEmbeddedQueue()
    {
        using var host = Host([]);

        Assert.IsType<InMemoryJobQueue>(host.Services.GetRequiredService<IJobQueue>());
        Assert.Null(host.Services.GetService<ServiceBusJobQueue>());
    }

    private static IHost Host(Dictionary<string, string?> settings)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddLogging();
        // As every host composes it: the provider the settings name.
        builder.Services.AddServerlessInference().AddProviders(ProviderChoice.Read(builder.Configuration));
        return builder.Build();
    }
}
