using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using ServerlessInference.Scaling;

namespace ServerlessInference.Hosting.Orchestration;

public static class ChildProcessServiceCollectionExtensions
{
    /// <summary><see cref="IWorkerOrchestrator"/> → <see cref="ChildProcessWorkerOrchestrator"/>, with
    /// <see cref="ChildProcessOptions"/> from <c>Inference:Workers</c> validated at start. Replaces any orchestrator
    /// registered before. Needs an <see cref="Workers.IWorkerRegistry"/> that the worker processes share.</summary>
    public static IServiceCollection AddChildProcessOrchestrator(this IServiceCollection services)
    {
        services.AddValidatedOptions<ChildProcessOptions, ChildProcessOptionsValidator>(ChildProcessOptions.Section);
        services.TryAddSingleton<ChildProcessWorkerOrchestrator>();
        services.Replace(ServiceDescriptor.Singleton<IWorkerOrchestrator>(sp => sp.GetRequiredService<ChildProcessWorkerOrchestrator>()));
        return services;
    }
}
