using System.Net.Sockets;
using Azure.Identity;
using Azure.Messaging.ServiceBus;

namespace ServerlessInference.Azure.Jobs;

/// <summary>Turns Service Bus failures into the platform's errors: a full queue into 429
/// (<see cref="InferenceError.QueueFull"/>), an unreachable or refusing broker into 503
/// (<see cref="InferenceError.Unavailable"/>), both with Retry-After.</summary>
internal static class ServiceBusFailures
{
    /// <summary>The platform error for <paramref name="exception"/>, or null when it is not a broker failure (a bug, a
    /// cancellation) and should propagate as it is.</summary>
    public static InferenceException? Translate(Exception exception, string queueName, int queueFullRetryAfterSeconds, int unavailableRetryAfterSeconds)
    {
        switch (exception)
        {
            case ServiceBusException { Reason: ServiceBusFailureReason.QuotaExceeded }:
                // Service Bus has no job count limit of its own; a queue at its size quota refuses sends.
                return new InferenceException(InferenceError.QueueFull, "the job queue is full (Service Bus quota exceeded); retry later", exception)
                {
                    RetryAfterSeconds = queueFullRetryAfterSeconds,
                };
            case ServiceBusException { Reason: ServiceBusFailureReason.MessageSizeExceeded }:
                return new InferenceException(InferenceError.PayloadTooLarge, "the request is larger than the Service Bus job queue accepts in one message", exception);
            case ServiceBusException { Reason: ServiceBusFailureReason.MessagingEntityNotFound or ServiceBusFailureReason.MessagingEntityDisabled }:
                return Unavailable($"the job queue is unavailable (Service Bus queue '{queueName}' does not exist or is disabled; see Inference:ServiceBus:QueueName); retry later", exception, unavailableRetryAfterSeconds);
            case ServiceBusException { Reason: ServiceBusFailureReason.ServiceCommunicationProblem or ServiceBusFailureReason.ServiceTimeout or ServiceBusFailureReason.ServiceBusy }:
            case ServiceBusException { IsTransient: true }:
            case SocketException or TimeoutException or IOException:
                return Unavailable("the job queue is unavailable (Service Bus cannot be reached); retry later", exception, unavailableRetryAfterSeconds);
            case UnauthorizedAccessException or AuthenticationFailedException:
                return Unavailable("the job queue is unavailable (Service Bus refused the credentials; see Inference:ServiceBus); retry later", exception, unavailableRetryAfterSeconds);
            default:
                return exception.InnerException is SocketException
                    ? Unavailable("the job queue is unavailable (Service Bus cannot be reached); retry later", exception, unavailableRetryAfterSeconds)
                    : null;
        }
    }

    /// <summary>True when a settlement or renewal found the lock gone: the message was, or will be, delivered again.</summary>
    public static bool IsLockLost(Exception exception) =>
        exception is ServiceBusException { Reason: ServiceBusFailureReason.MessageLockLost };

    private static InferenceException Unavailable(string message, Exception exception, int retryAfterSeconds) =>
        new(InferenceError.Unavailable, message, exception) { RetryAfterSeconds = retryAfterSeconds };
}
