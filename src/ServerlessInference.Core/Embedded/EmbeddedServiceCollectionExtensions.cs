using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Hosting;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Scaling;
using ServerlessInference.Streaming;
using ServerlessInference.Workers;

namespace ServerlessInference.Embedded;

/// <summary>Registration of the embedded (in-process) providers. Each registers unconditionally and replaces the
/// provider registered before it for the same contract.</summary>
public static class EmbeddedServiceCollectionExtensions
{
    /// <summary><see cref="IJobQueue"/> → <see cref="InMemoryJobQueue"/> (options from <c>Inference:Queue</c>).</summary>
    public static IServiceCollection AddInMemoryJobQueue(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddValidatedOptions<JobQueueOptions, JobQueueOptionsValidator>(JobQueueOptions.Section);
        services.TryAddSingleton<InMemoryJobQueue>();
        services.Replace(ServiceDescriptor.Singleton<IJobQueue>(sp => sp.GetRequiredService<InMemoryJobQueue>()));
        return services;
    }

    /// <summary><see cref="IResultStore"/> → <see cref="InMemoryResultStore"/> (options from <c>Inference:Results</c>).</summary>
    public static IServiceCollection AddInMemoryResultStore(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddValidatedOptions<ResultStoreOptions, ResultStoreOptionsValidator>(ResultStoreOptions.Section);
        services.TryAddSingleton<InMemoryResultStore>();
        services.Replace(ServiceDescriptor.Singleton<IResultStore>(sp => sp.GetRequiredService<InMemoryResultStore>()));
        return services;
    }

    /// <summary><see cref="IJobStreams"/> → <see cref="InMemoryJobStreams"/> (options from <c>Inference:Streams</c>): tokens
    /// reach followers in this process only.</summary>
    public static IServiceCollection AddInMemoryJobStreams(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddValidatedOptions<JobStreamOptions, JobStreamOptionsValidator>(JobStreamOptions.Section);
        services.TryAddSingleton<InMemoryJobStreams>();
        services.Replace(ServiceDescriptor.Singleton<IJobStreams>(sp => sp.GetRequiredService<InMemoryJobStreams>()));
        return services;
    }

    /// <summary><see cref="IWorkerRegistry"/> → <see cref="InMemoryWorkerRegistry"/> and <see cref="IScalingDecisionLog"/>
    /// → <see cref="InMemoryScalingDecisionLog"/> (and <see cref="IPlacementBoard"/> → <see cref="InMemoryPlacementBoard"/>):
    /// worker tracking, scaling history and the scaler's placement plan live together.</summary>
    public static IServiceCollection AddInMemoryWorkerRegistry(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.Replace(ServiceDescriptor.Singleton<IWorkerRegistry>(sp => new InMemoryWorkerRegistry(sp.GetRequiredService<TimeProvider>())));
        services.Replace(ServiceDescriptor.Singleton<IScalingDecisionLog>(new InMemoryScalingDecisionLog()));
        services.Replace(ServiceDescriptor.Singleton<IPlacementBoard>(new InMemoryPlacementBoard()));
        return services;
    }

    /// <summary><see cref="IModelStore"/> → <see cref="FolderModelStore"/> at <c>Inference:ModelStore:Root</c>.</summary>
    public static IServiceCollection AddFolderModelStore(this IServiceCollection services)
    {
        services.AddValidatedOptions<ModelStoreOptions, ModelStoreOptionsValidator>(ModelStoreOptions.Section);
        services.Replace(ServiceDescriptor.Singleton<IModelStore>(sp => new FolderModelStore(sp.GetRequiredService<IOptions<ModelStoreOptions>>().Value.Root)));
        return services;
    }

    /// <summary>Workers as loops in this process, a warm pool shared by them, and the scaler (on a background timer
    /// unless <paramref name="ticks"/> says the host ticks it). Needs an <see cref="IInferenceEngine"/> (e.g. <c>AddOnnxEngine</c>).</summary>
    public static IServiceCollection AddInProcessWorkers(this IServiceCollection services, ScalerTicks ticks = ScalerTicks.Background)
    {
        services.AddWorkerRuntime();
        services.TryAddSingleton(sp => new InProcessWorkerOrchestrator(
            sp.GetRequiredService<WorkerFactory>().Create,
            sp.GetRequiredService<ILogger<InProcessWorkerOrchestrator>>()));
        services.Replace(ServiceDescriptor.Singleton<IWorkerOrchestrator>(sp => sp.GetRequiredService<InProcessWorkerOrchestrator>()));
        return services.AddScaler(ticks);
    }
}
