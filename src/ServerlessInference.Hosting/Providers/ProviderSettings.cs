namespace ServerlessInference.Hosting.Providers;

/// <summary>A setting that picks the provider of one contract, its default and the names it accepts.</summary>
public sealed record ProviderSetting(string Key, string Default, IReadOnlyList<string> Known)
{
    /// <summary>The setting as an app setting or environment variable spells it (<c>__</c> for <c>:</c>).</summary>
    public string EnvironmentKey => Key.Replace(":", "__", StringComparison.Ordinal);
}

/// <summary>The provider settings and the names they accept. Only the host composition reads them.</summary>
public static class ProviderSettings
{
    public const string Embedded = "Embedded";
    public const string Redis = "Redis";
    public const string ServiceBus = "ServiceBus";
    public const string Folder = "Folder";
    public const string Blob = "Blob";
    public const string InProcess = "InProcess";
    public const string ChildProcess = "ChildProcess";
    public const string ContainerApps = "ContainerApps";
    public const string Kubernetes = "Kubernetes";

    public static ProviderSetting Queue { get; } = new("Inference:Queue:Provider", Embedded, [Embedded, Redis, ServiceBus]);

    public static ProviderSetting Results { get; } = new("Inference:Results:Provider", Embedded, [Embedded, Redis]);

    /// <summary>Worker registry and scaling history.</summary>
    public static ProviderSetting Registry { get; } = new("Inference:Registry:Provider", Embedded, [Embedded, Redis]);

    public static ProviderSetting ModelStore { get; } = new("Inference:ModelStore:Provider", Folder, [Folder, Blob]);

    /// <summary>What starts and stops workers: loops in this process, child processes, an Azure Container App or a
    /// Kubernetes Deployment. The default here is <c>InProcess</c>; a host may put its own default in front
    /// (the DevHost's services profile: <c>ChildProcess</c>; the Functions app: <c>ContainerApps</c>).</summary>
    public static ProviderSetting Orchestrator { get; } = new("Inference:Orchestrator:Provider", InProcess, [InProcess, ChildProcess, ContainerApps, Kubernetes]);
}
