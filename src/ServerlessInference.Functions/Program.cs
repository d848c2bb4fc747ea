using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.Hosting;
using ServerlessInference.Azure;
using ServerlessInference.Functions.Hosting;
using ServerlessInference.Hosting;
using ServerlessInference.Redis;

var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
builder.UseFunctionsDefaults();

builder.Services
    .AddServerlessInference(builder.Configuration)
    .AddRedisProviders(builder.Configuration)
    .AddBlobModelStore(builder.Configuration)
    // LEAD (after merging issue 4's branches): add the Service Bus queue and the orchestrators here, e.g.
    //     .AddServiceBusJobQueue(builder.Configuration)
    //     .AddContainerAppsOrchestrator(builder.Configuration)
    //     .AddKubernetesOrchestrator(builder.Configuration)
    // Until then no IJobQueue (ServiceBus) or IWorkerOrchestrator is registered under the Functions defaults.
    .AddGatewayFunctions();

builder.Build().Run();
