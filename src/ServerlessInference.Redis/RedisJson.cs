using System.Text.Json.Serialization;
using ServerlessInference.Scaling;
using ServerlessInference.Workers;

namespace ServerlessInference.Redis;

/// <summary>Source-generated JSON for what the Redis providers store as text.</summary>
[JsonSourceGenerationOptions(UseStringEnumConverter = true)]
[JsonSerializable(typeof(WorkerStatus))]
[JsonSerializable(typeof(ColdStart))]
[JsonSerializable(typeof(ScalingDecision))]
[JsonSerializable(typeof(StoredScalingState))]
[JsonSerializable(typeof(ServerlessInference.Security.ApiKey))]
[JsonSerializable(typeof(ServerlessInference.Webhooks.WebhookDelivery))]
[JsonSerializable(typeof(ServerlessInference.Webhooks.WebhookFailure))]
internal sealed partial class RedisJson : JsonSerializerContext;
