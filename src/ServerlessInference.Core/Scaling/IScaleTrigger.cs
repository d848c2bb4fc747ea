namespace ServerlessInference.Scaling;

/// <summary>Lets the gateway wake the scaler at once when work arrives for zero workers (KEDA's activation).</summary>
public interface IScaleTrigger
{
    void Nudge();
}
