using ServerlessInference.DevHost;
using ServerlessInference.Gateway;
using ServerlessInference.Hosting;

if (KeysCommand.IsCommand(args))
{
    return await KeysCommand.RunAsync(args, Console.Out, Console.Error);
}

if (ModelsCommand.IsCommand(args))
{
    return await ModelsCommand.RunAsync(args, Console.Out, Console.Error);
}

var builder = WebApplication.CreateBuilder(args);
builder.AddDevHost();

var app = builder.Build();
app.UseManagementPort();
app.MapInferenceGateway();
app.MapInferenceMetrics();
app.Run();
return 0;

/// <summary>Entry point, visible to WebApplicationFactory in tests.</summary>
public partial class Program;
