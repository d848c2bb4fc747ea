namespace ServerlessInference.Jobs;

/// <summary>A job that was given up on, with why.</summary>
public sealed record DeadLetter(InferenceJob Job, string Reason, int DeliveryCount, DateTimeOffset At);
