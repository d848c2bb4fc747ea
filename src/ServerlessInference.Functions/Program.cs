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
    .AddServiceBusJobQueue(builder.Configuration)
    .AddWorkerOrchestrator(builder.Configuration)
    .AddGatewayFunctions();

builder.Build().Run();
