using ServerlessInference.Worker;

StartupTimeline.Mark("main");
var builder = WebApplication.CreateSlimBuilder(args);
builder.AddWorkerHost();

var app = builder.Build();
StartupTimeline.Mark("host-built");
app.MapWorkerEndpoints();
app.Run();
