using System.Net;
using Azure.Identity;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Azure.Scaling;
using ServerlessInference.Hosting;
using ServerlessInference.Scaling;

namespace ServerlessInference.Azure;

/// <summary>Start-up wiring of the Container Apps orchestrator.</summary>
public static class ContainerAppsServiceCollectionExtensions
{
    /// <summary><see cref="IWorkerOrchestrator"/> → <see cref="ContainerAppsWorkerOrchestrator"/>, with
    /// <see cref="ContainerAppsOrchestratorOptions"/> bound from <c>Inference:Orchestrator:ContainerApps</c> and validated at
    /// start. It replaces any orchestrator registered before. No ARM call is made until the scaler first ticks.</summary>
    public static IServiceCollection AddContainerAppsOrchestrator(this IServiceCollection services)
    {
        services.AddValidatedOptions<ContainerAppsOrchestratorOptions, ContainerAppsOrchestratorOptionsValidator>(ContainerAppsOrchestratorOptions.Section);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<ContainerAppsOrchestratorOptions>>().Value;
            var credential = new DefaultAzureCredential(new DefaultAzureCredentialOptions
            {
                ManagedIdentityClientId = string.IsNullOrWhiteSpace(options.ManagedIdentityClientId) ? null : options.ManagedIdentityClientId.Trim(),
            });
            var handler = new SocketsHttpHandler
            {
                // ARM's front doors move; a pooled connection should not outlive a DNS change for long.
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                AutomaticDecompression = DecompressionMethods.All,
            };
            return new ContainerAppsWorkerOrchestrator(
                options, credential, handler, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<ContainerAppsWorkerOrchestrator>>());
        });
        services.Replace(ServiceDescriptor.Singleton<IWorkerOrchestrator>(sp => sp.GetRequiredService<ContainerAppsWorkerOrchestrator>()));
        return services;
    }
}
