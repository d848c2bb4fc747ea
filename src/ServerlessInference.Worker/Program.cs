namespace ServerlessInference.Worker;

/// <summary>Entry point of the worker process. Not top-level statements: the DevHost references this project (to
/// carry the worker beside it) and a second public <c>Program</c> would clash with the DevHost's.</summary>
internal static class WorkerProgram
{
    public static void Main(string[] args)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.AddWorkerHost();

        var app = builder.Build();
        app.MapWorkerEndpoints();
        app.Run();
    }
}
