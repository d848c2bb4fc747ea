using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Azure.Models;
using ServerlessInference.Hosting;
using ServerlessInference.Models;

namespace ServerlessInference.Azure;

/// <summary>Start-up wiring of the Azure providers; each registers only when the configuration chooses it.</summary>
public static class AzureServiceCollectionExtensions
{
    /// <summary>When <c>Inference:ModelStore:Provider</c> is <c>Blob</c>: <see cref="IModelStore"/> →
    /// <see cref="BlobModelStore"/>, with <see cref="BlobModelStoreOptions"/> from <c>Inference:ModelStore:Blob</c>
    /// validated at start. Otherwise does nothing. No storage call is made until the store is first used.</summary>
    public static IServiceCollection AddBlobModelStore(this IServiceCollection services, IConfiguration configuration)
    {
        if (InferenceServiceCollectionExtensions.Provider(configuration, ProviderSettings.ModelStore) != ProviderSettings.Blob)
        {
            return services;
        }

        services.AddOptions<BlobModelStoreOptions>().BindConfiguration(BlobModelStoreOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BlobModelStoreOptions>, BlobModelStoreOptionsValidator>());
        services.Replace(ServiceDescriptor.Singleton<IModelStore>(sp => new BlobModelStore(
            sp.GetRequiredService<IOptions<BlobModelStoreOptions>>().Value,
            sp.GetRequiredService<ILogger<BlobModelStore>>())));
        return services;
    }
}
