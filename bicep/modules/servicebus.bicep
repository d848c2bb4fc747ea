// Service Bus namespace and the jobs queue. Local (SAS) auth is disabled: senders and receivers use Microsoft Entra ID.
// The queue's lock duration is the platform's lease duration (Inference:Queue:LeaseDuration). Its max delivery count is
// the platform's delivery limit (Inference:Queue:MaxDeliveryCount) plus one: the worker dead-letters a job on the delivery
// after its limit and stores the reason in the job status; if Service Bus gave up first, the job would silently vanish.

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the Service Bus namespace.')
param name string

@description('Service Bus tier. Basic has no sessions or topics, which this platform does not use; Premium adds isolation.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param sku string

@description('Name of the jobs queue.')
param queueName string

@description('Peek-lock duration in seconds (the job lease).')
@minValue(5)
@maxValue(300)
param lockDurationSeconds int

@description('Deliveries before a message is dead-lettered.')
@minValue(1)
@maxValue(100)
param maxDeliveryCount int

@description('Time to live of a queued job (ISO 8601 duration); an expired job is dead-lettered.')
param messageTimeToLive string

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    tier: sku
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: queueName
  properties: {
    lockDuration: 'PT${lockDurationSeconds}S'
    maxDeliveryCount: maxDeliveryCount
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: messageTimeToLive
    requiresSession: false
    enablePartitioning: false
  }
}

output name string = namespace.name
output id string = namespace.id
// serviceBusEndpoint is https://NAME.servicebus.windows.net:443/ (another suffix in sovereign clouds); the SDK wants the host.
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '//')[1], ':')[0]
output queueName string = queue.name
