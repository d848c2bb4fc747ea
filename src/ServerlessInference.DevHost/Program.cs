using ServerlessInference.DevHost;
using ServerlessInference.Gateway;
using ServerlessInference.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddDevHost();

var app = builder.Build();
app.MapInferenceGateway();
app.MapInferenceMetrics();
app.Run();

/// <summary>Entry point, visible to WebApplicationFactory in tests.</summary>
public partial class Program;
