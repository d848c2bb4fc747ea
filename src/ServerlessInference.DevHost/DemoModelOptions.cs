namespace ServerlessInference.DevHost;

/// <summary>Settings of the demo models (section <c>Inference:DemoModels</c>). Bound at start-up, so a value that is
/// not a boolean stops the host naming the setting instead of failing at the first request.</summary>
public sealed class DemoModelOptions
{
    public const string Section = "Inference:DemoModels";

    /// <summary>Upload the demo models (<c>resnet18</c>, <c>mlp-bench</c>, ...) to the model store on first run (default on).</summary>
    public bool Seed { get; set; } = true;
}
