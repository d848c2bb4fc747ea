namespace ServerlessInference.Worker;

/// <summary>Where a standby worker waits for the line that activates it: standard input, where the child-process
/// orchestrator writes it.</summary>
public sealed class StandbyActivation(TextReader input)
{
    /// <summary>The next line; null when the input ended (the orchestrator is gone).</summary>
    public ValueTask<string?> WaitAsync(CancellationToken cancellationToken) => input.ReadLineAsync(cancellationToken);
}
