using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Hosting.Orchestration;

/// <summary>Settings of worker processes (section <c>Inference:Workers</c>).</summary>
public sealed class ChildProcessOptions : IValidatableObject
{
    public const string Section = "Inference:Workers";

    /// <summary>The worker's dll (run with <c>dotnet</c>) or executable; default: <c>ServerlessInference.Worker.dll</c>
    /// beside this host, where the DevHost's build copies it (with its <c>deps.json</c> and <c>runtimeconfig.json</c>; the
    /// libraries it needs are the host's own).</summary>
    public string? Path { get; set; }

    /// <summary>How long a stopped worker may drain after SIGTERM before it is killed.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Worker processes kept started but idle (no model, not registered, taking no jobs), so a scale-up takes
    /// one instead of starting a process; each one taken is replaced. They do not count as replicas. Default 0 (none).</summary>
    public int Standby { get; set; }

    public string ResolvePath()
    {
        var path = string.IsNullOrWhiteSpace(Path) ? System.IO.Path.Combine(AppContext.BaseDirectory, "ServerlessInference.Worker.dll") : Path;
        return File.Exists(path)
            ? System.IO.Path.GetFullPath(path)
            : throw new InvalidOperationException($"the worker is not at '{path}' ({Section}:Path)");
    }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (DrainTimeout <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:DrainTimeout must be positive", [nameof(DrainTimeout)]);
        }

        if (Standby is < 0 or > 64)
        {
            yield return new ValidationResult($"{Section}:Standby must be between 0 and 64", [nameof(Standby)]);
        }
    }
}

[OptionsValidator]
public sealed partial class ChildProcessOptionsValidator : IValidateOptions<ChildProcessOptions>;
