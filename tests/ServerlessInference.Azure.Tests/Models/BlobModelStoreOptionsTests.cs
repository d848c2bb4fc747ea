using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using ServerlessInference.Hosting.Providers;
using ServerlessInference.Azure.Models;
using ServerlessInference.Hosting;
using ServerlessInference.Models;
using ServerlessInference.Testing.Services;

namespace ServerlessInference.Azure.Tests.Models;

public sealed class BlobModelStoreOptionsTests
{
    private const string DevConnectionString =
        $"DefaultEndpointsProtocol=http;AccountName={AzuriteServer.AccountName};AccountKey={AzuriteServer.AccountKey};BlobEndpoint=http://127.0.0.1:1/{AzuriteServer.AccountName};";

    [Fact]
    public void Failures_NeitherConnectionStringNorServiceUri_NamesBothSettings()
    {
        var failure = Assert.Single(BlobModelStoreOptionsValidator.Failures(new BlobModelStoreOptions()));

        Assert.Contains("Inference:ModelStore:Blob:ConnectionString", failure, StringComparison.Ordinal);
        Assert.Contains("Inference:ModelStore:Blob:ServiceUri", failure, StringComparison.Ordinal);
        Assert.Contains("neither is set", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Failures_BothConnectionStringAndServiceUri_SaysExactlyOne()
    {
        var failure = Assert.Single(BlobModelStoreOptionsValidator.Failures(new BlobModelStoreOptions
        {
            ConnectionString = DevConnectionString,
            ServiceUri = "https://acct.blob.core.windows.net",
        }));

        Assert.Contains("exactly one", failure, StringComparison.Ordinal);
        Assert.Contains("both are set", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Failures_MalformedConnectionString_NamesSettingWithoutEchoingIt()
    {
        const string secretish = "AccountKey=s3cr3t-not-a-connection-string";

        var failure = Assert.Single(BlobModelStoreOptionsValidator.Failures(new BlobModelStoreOptions { ConnectionString = secretish }));

        Assert.Contains("Inference:ModelStore:Blob:ConnectionString is not a valid storage connection string", failure, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3t", failure, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("acct.blob.core.windows.net")]
    [InlineData("http://acct.blob.core.windows.net")]
    [InlineData("ftp://acct")]
    public void Failures_ServiceUriNotAbsoluteHttps_NamesSetting(string serviceUri)
    {
        var failure = Assert.Single(BlobModelStoreOptionsValidator.Failures(new BlobModelStoreOptions { ServiceUri = serviceUri }));

        Assert.Contains("Inference:ModelStore:Blob:ServiceUri must be an absolute https URI", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Failures_ServiceUriWithSasQuery_RefusesIt()
    {
        var failure = Assert.Single(BlobModelStoreOptionsValidator.Failures(new BlobModelStoreOptions { ServiceUri = "https://acct.blob.core.windows.net/?sv=2025&sig=abc" }));

        Assert.Contains("must not carry a query", failure, StringComparison.Ordinal);
        Assert.DoesNotContain("sig=abc", failure, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Models")]
    [InlineData("ab")]
    [InlineData("-models")]
    [InlineData("mo--dels")]
    public void Failures_InvalidContainerName_NamesSetting(string container)
    {
        var failure = Assert.Single(BlobModelStoreOptionsValidator.Failures(new BlobModelStoreOptions { ConnectionString = DevConnectionString, Container = container }));

        Assert.Contains("Inference:ModelStore:Blob:Container", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Failures_ConnectionStringOrServiceUriAlone_AreValid()
    {
        Assert.Empty(BlobModelStoreOptionsValidator.Failures(new BlobModelStoreOptions { ConnectionString = DevConnectionString }));
        Assert.Empty(BlobModelStoreOptionsValidator.Failures(new BlobModelStoreOptions { ConnectionString = "UseDevelopmentStorage=true" }));
        Assert.Empty(BlobModelStoreOptionsValidator.Failures(new BlobModelStoreOptions { ServiceUri = "https://acct.blob.core.windows.net" }));
    }

    [Fact]
    public void CreateContainerClient_ServiceUri_UsesConfiguredContainerWithoutCallingStorage()
    {
        var container = BlobModelStore.CreateContainerClient(new BlobModelStoreOptions { ServiceUri = "https://acct.blob.core.windows.net", Container = "weights" });

        Assert.Equal("weights", container.Name);
        Assert.Equal("https://acct.blob.core.windows.net/weights", container.Uri.ToString());
    }

    [Fact]
    public async Task AddBlobModelStore_BlobProviderWithoutSettings_FailsAtStartNamingSettings()
    {
        using var host = Host(new() { ["Inference:ModelStore:Provider"] = "Blob" });

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("Inference:ModelStore:Blob:ConnectionString", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Inference:ModelStore:Blob:ServiceUri", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddBlobModelStore_BlobProviderAndStorageDown_StartsAndResolvesBlobStore()
    {
        using var host = Host(new()
        {
            ["Inference:ModelStore:Provider"] = "blob",
            ["Inference:ModelStore:Blob:ConnectionString"] = DevConnectionString,
        });

        await host.StartAsync();

        Assert.IsType<BlobModelStore>(host.Services.GetRequiredService<IModelStore>());
        await host.StopAsync();
    }

    [Fact]
    public void AddBlobModelStore_FolderProvider_LeavesFolderStore()
    {
        using var host = Host(new() { ["Inference:ModelStore:Root"] = Path.GetTempPath() });

        Assert.IsNotType<BlobModelStore>(host.Services.GetRequiredService<IModelStore>());
        Assert.Null(host.Services.GetService<IOptions<BlobModelStoreOptions>>()?.Value.ConnectionString);
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
