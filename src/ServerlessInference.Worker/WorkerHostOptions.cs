using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Worker;

/// <summary>Settings of the worker process (section <c>Inference:WorkerHost</c>).</summary>
public sealed class WorkerHostOptions : IValidatableObject
{
    public const string Section = "Inference:WorkerHost";

    /// <summary>This worker's id in the registry; default <c>{host}-{pid}</c>. The child-process orchestrator sets it.</summary>
    public string? Id { get; set; }

    /// <summary>How long SIGTERM waits for the running batch to finish.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>When set, the worker drains and exits once this process is gone. The child-process orchestrator sets
    /// it to its own pid, so a gateway killed with SIGKILL (which cannot pass the signal on) leaves no orphan workers.</summary>
    public int? ParentProcessId { get; set; }

    /// <summary>How often the parent process is looked for.</summary>
    public TimeSpan ParentCheckInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Start as a standby: build the host, create ONNX Runtime's environment and connect to the services, then
    /// wait without registering or taking jobs until a line arrives on standard input (the child-process orchestrator
    /// writes one when a scale-up takes this process). The end of standard input stops the process.</summary>
    public bool Standby { get; set; }

    public string ResolveId() => string.IsNullOrWhiteSpace(Id) ? $"{Environment.MachineName}-{Environment.ProcessId}" : Id;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (DrainTimeout <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:DrainTimeout must be positive", [nameof(DrainTimeout)]);
        }

        if (ParentProcessId is <= 0)
        {
            yield return new ValidationResult($"{Section}:ParentProcessId must be a process id", [nameof(ParentProcessId)]);
        }

        if (ParentCheckInterval <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:ParentCheckInterval must be positive", [nameof(ParentCheckInterval)]);
        }
    }
}

[OptionsValidator]
public sealed partial class WorkerHostOptionsValidator : IValidateOptions<WorkerHostOptions>;
