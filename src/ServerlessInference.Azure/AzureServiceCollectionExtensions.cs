using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Azure.Jobs;
using ServerlessInference.Azure.Models;
using ServerlessInference.Embedded;
using ServerlessInference.Hosting;
using ServerlessInference.Jobs;
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

    /// <summary>When <c>Inference:Queue:Provider</c> is <c>ServiceBus</c>: <see cref="IJobQueue"/> →
    /// <see cref="ServiceBusJobQueue"/>, with <see cref="ServiceBusJobQueueOptions"/> from <c>Inference:ServiceBus</c>
    /// validated at start. Otherwise does nothing. Call it beside <c>AddServerlessInference</c>, in either order.</summary>
    /// <remarks>The client connects when the queue is first used, so the host starts while Service Bus is down; calls
    /// meanwhile fail with <see cref="InferenceError.Unavailable"/> (503 + Retry-After). The container disposes the
    /// queue, which closes its sender, receiver and client.</remarks>
    public static IServiceCollection AddServiceBusJobQueue(this IServiceCollection services, IConfiguration configuration)
    {
        if (InferenceServiceCollectionExtensions.Provider(configuration, ProviderSettings.Queue) != ProviderSettings.ServiceBus)
        {
            return services;
        }

        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<ServiceBusJobQueueOptions>().BindConfiguration(ServiceBusJobQueueOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ServiceBusJobQueueOptions>, ServiceBusJobQueueOptionsValidator>());
        services.TryAddSingleton(sp => ServiceBusJobQueue.Create(
            sp.GetRequiredService<IOptions<ServiceBusJobQueueOptions>>().Value,
            sp.GetRequiredService<IOptions<JobQueueOptions>>().Value,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<ServiceBusJobQueue>>()));
        services.TryAddSingleton<IJobQueue>(sp => sp.GetRequiredService<ServiceBusJobQueue>());
        return services;
    }
}
