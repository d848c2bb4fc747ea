using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Azure.Jobs;
using ServerlessInference.Azure.Models;
using ServerlessInference.Hosting;
using ServerlessInference.Jobs;
using ServerlessInference.Models;

namespace ServerlessInference.Azure;

/// <summary>Registration of the Azure storage and messaging providers. Each registers unconditionally and replaces the
/// provider registered before it for the same contract.</summary>
public static class AzureServiceCollectionExtensions
{
    /// <summary><see cref="IModelStore"/> → <see cref="BlobModelStore"/>, with <see cref="BlobModelStoreOptions"/> from
    /// <c>Inference:ModelStore:Blob</c> validated at start. No storage call is made until the store is first used.</summary>
    public static IServiceCollection AddBlobModelStore(this IServiceCollection services)
    {
        services.AddValidatedOptions<BlobModelStoreOptions, BlobModelStoreOptionsValidator>(BlobModelStoreOptions.Section);
        services.Replace(ServiceDescriptor.Singleton<IModelStore>(sp => new BlobModelStore(
            sp.GetRequiredService<IOptions<BlobModelStoreOptions>>().Value,
            sp.GetRequiredService<ILogger<BlobModelStore>>())));
        return services;
    }

    /// <summary><see cref="IJobQueue"/> → <see cref="ServiceBusJobQueue"/>, with <see cref="ServiceBusJobQueueOptions"/> from
    /// <c>Inference:ServiceBus</c> validated at start.</summary>
    /// <remarks>The client connects when the queue is first used, so the host starts while Service Bus is down; calls
    /// meanwhile fail with <see cref="InferenceError.Unavailable"/> (503 + Retry-After). The container disposes the
    /// queue, which closes its sender, receiver and client.</remarks>
    public static IServiceCollection AddServiceBusJobQueue(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddValidatedOptions<JobQueueOptions, JobQueueOptionsValidator>(JobQueueOptions.Section);
        services.AddValidatedOptions<ServiceBusJobQueueOptions, ServiceBusJobQueueOptionsValidator>(ServiceBusJobQueueOptions.Section);
        services.TryAddSingleton(sp => ServiceBusJobQueue.Create(
            sp.GetRequiredService<IOptions<ServiceBusJobQueueOptions>>().Value,
            sp.GetRequiredService<IOptions<JobQueueOptions>>().Value,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<ServiceBusJobQueue>>()));
        services.Replace(ServiceDescriptor.Singleton<IJobQueue>(sp => sp.GetRequiredService<ServiceBusJobQueue>()));
        return services;
    }
}
