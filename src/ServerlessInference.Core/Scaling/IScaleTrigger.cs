namespace ServerlessInference.Scaling;

/// <summary>Lets the gateway wake the scaler at once when a job arrives that no worker can take now (Knative's
/// activator, KEDA's activation).</summary>
/// <remarks>The gateway calls <see cref="Nudge"/> after every enqueue: it must return at once and never throw.
/// Implementations coalesce nudges, check whether a worker can take the job (<see cref="ScaleActivation"/>), and run
/// at most one scaler tick per <see cref="ScalingOptions.ActivationInterval"/>; the timer stays the safety net.</remarks>
public interface IScaleTrigger
{
    void Nudge();
}
