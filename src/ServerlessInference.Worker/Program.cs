using ServerlessInference.Worker;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddWorkerHost();

var app = builder.Build();
app.MapWorkerEndpoints();
app.Run();
