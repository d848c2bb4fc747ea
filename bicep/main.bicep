// ServerlessInference on Azure, deployed by `azd up`: a resource group holding the Functions gateway + scaler (Flex
// Consumption), the jobs queue (Service Bus), the model store (Blob), results and worker registry (Azure Managed
// Redis), a container registry and the GPU worker (Container Apps, serverless GPU workload profile).
// Every connection is made with a user-assigned managed identity; no key, SAS or password is created or passed.
// All modules are local files, so `bicep build` needs no registry.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; names the resource group and seeds the unique resource names.')
param environmentName string

@minLength(1)
@description('Azure region of every resource. For GPU workers pick a region with serverless GPUs (see docs/azure.md).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the deploying user (azd sets AZURE_PRINCIPAL_ID); gets upload rights on the models container. Empty: no grant.')
param principalId string = ''

@description('Type of principalId: User for a person, ServicePrincipal for a CI identity.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Workload profile of the worker: a serverless GPU (T4 or A100), or Consumption for CPU only (regions or subscriptions without GPU quota).')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
  'Consumption'
])
param workerWorkloadProfile string = 'Consumption-GPU-NC8as-T4'

@description('Most worker replicas the scaler may start (Inference:Scaling:MaxReplicas). Keep within your GPU quota.')
@minValue(1)
@maxValue(100)
param workerMaxReplicas int = 4

@description('Set by azd (SERVICE_WORKER_RESOURCE_EXISTS) once the worker app exists, so a re-provision keeps its image.')
param workerExists bool = false

@description('Name of the Service Bus jobs queue (Inference:ServiceBus:QueueName).')
param queueName string = 'jobs'

@description('Service Bus peek-lock duration in seconds: the job lease (Inference:Queue:LeaseDuration).')
@minValue(5)
@maxValue(300)
param queueLockDurationSeconds int = 30

@description('Deliveries of a job before the worker dead-letters it with the reason (Inference:Queue:MaxDeliveryCount). The queue itself allows one more, so the worker, which records why in the job status, always decides first.')
@minValue(1)
@maxValue(99)
param queueMaxDeliveryCount int = 5

@description('How long a queued job may wait before Service Bus dead-letters it (ISO 8601 duration).')
param queueMessageTimeToLive string = 'PT1H'

@description('Service Bus tier.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param serviceBusSku string = 'Standard'

@description('Azure Managed Redis SKU.')
@allowed([
  'Balanced_B0'
  'Balanced_B1'
  'Balanced_B3'
  'Balanced_B5'
  'Balanced_B10'
  'MemoryOptimized_M10'
  'ComputeOptimized_X3'
])
param redisSku string = 'Balanced_B0'

@description('Run Azure Managed Redis with a replica (about twice the cost).')
param redisHighAvailability bool = false

@description('Container registry tier (Premium enables artifact streaming for faster GPU cold starts).')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param containerRegistrySku string = 'Basic'

@description('NCRONTAB schedule (six fields, seconds first) of the scaler timer function (app setting SCALER_SCHEDULE).')
param scalerSchedule string = '*/10 * * * * *'

@description('Most instances of the Flex Consumption plan (Azure enforces its own lower bound).')
@minValue(1)
@maxValue(1000)
param functionMaximumInstanceCount int = 100

@description('Memory of one Flex Consumption instance, in MB.')
@allowed([
  512
  2048
  4096
])
param functionInstanceMemoryMB int = 2048

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

var functionAppName = 'func-${resourceToken}'
var workerAppName = 'ca-worker-${resourceToken}'
var modelsContainerName = 'models'
// Lower-case letters, digits and hyphens, at most 63 characters.
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var gpuWorkloadProfileName = 'gpu'
var workerWorkloadProfileName = workerWorkloadProfile == 'Consumption' ? 'Consumption' : gpuWorkloadProfileName
// azd replaces it with the worker image it builds (azure.yaml service `worker`).
var placeholderImage = 'mcr.microsoft.com/azuredocs/containerapps-helloworld:latest'
// The lease as a .NET TimeSpan (hh:mm:ss), the same length as the Service Bus lock.
var leaseDuration = '00:${padLeft(string(queueLockDurationSeconds / 60), 2, '0')}:${padLeft(string(queueLockDurationSeconds % 60), 2, '0')}'
var workerDrainSeconds = 60

resource rg 'Microsoft.Resources/resourceGroups@2025-04-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identities 'modules/identities.bicep' = {
  name: 'identities'
  scope: rg
  params: {
    location: location
    tags: tags
    functionsIdentityName: 'id-func-${resourceToken}'
    workerIdentityName: 'id-worker-${resourceToken}'
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'st${resourceToken}'
    containerNames: [
      modelsContainerName
    ]
  }
}

// The Functions host's own account: the identity that owns it must not be able to write models.
module hostStorage 'modules/storage.bicep' = {
  name: 'host-storage'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'stfn${resourceToken}'
    containerNames: [
      deploymentContainerName
    ]
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'sb-${resourceToken}'
    sku: serviceBusSku
    queueName: queueName
    lockDurationSeconds: queueLockDurationSeconds
    maxDeliveryCount: queueMaxDeliveryCount + 1
    messageTimeToLive: queueMessageTimeToLive
  }
}

module redis 'modules/redis.bicep' = {
  name: 'redis'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'redis-${resourceToken}'
    sku: redisSku
    highAvailability: redisHighAvailability
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'cr${resourceToken}'
    sku: containerRegistrySku
  }
}

module containerAppsEnvironment 'modules/container-apps-environment.bicep' = {
  name: 'container-apps-environment'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'cae-${resourceToken}'
    workerWorkloadProfileType: workerWorkloadProfile
    gpuWorkloadProfileName: gpuWorkloadProfileName
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    functionsPrincipalId: identities.outputs.functionsIdentityPrincipalId
    workerPrincipalId: identities.outputs.workerIdentityPrincipalId
    userPrincipalId: principalId
    userPrincipalType: principalType
    storageAccountName: storage.outputs.name
    modelsContainerName: storage.outputs.containerNames[0]
    hostStorageAccountName: hostStorage.outputs.name
    serviceBusName: serviceBus.outputs.name
    redisName: redis.outputs.name
    registryName: registry.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

// The settings both the gateway/scaler and the worker read (README configuration keys, env-var form).
var redisConnectionString = '${redis.outputs.hostName}:${redis.outputs.port},ssl=true'
var sharedSettings = {
  Inference__Queue__Provider: 'ServiceBus'
  Inference__Queue__LeaseDuration: leaseDuration
  Inference__Queue__MaxDeliveryCount: string(queueMaxDeliveryCount)
  Inference__ServiceBus__FullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
  Inference__ServiceBus__QueueName: serviceBus.outputs.queueName
  Inference__Results__Provider: 'Redis'
  Inference__Registry__Provider: 'Redis'
  Inference__Redis__ConnectionString: redisConnectionString
  Inference__Redis__Authentication: 'EntraId'
  Inference__ModelStore__Provider: 'Blob'
  Inference__ModelStore__Blob__ServiceUri: storage.outputs.blobEndpoint
  Inference__ModelStore__Blob__Container: modelsContainerName
}

// Each app names its own identity: DefaultAzureCredential reads AZURE_CLIENT_ID; the per-provider client ids say the
// same explicitly, and the Redis user name is the identity's principal id.
func identitySettings(clientId string, principalId string) object => {
  AZURE_CLIENT_ID: clientId
  Inference__ServiceBus__ManagedIdentityClientId: clientId
  Inference__ModelStore__Blob__ManagedIdentityClientId: clientId
  Inference__Redis__ManagedIdentityClientId: clientId
  Inference__Redis__EntraPrincipalId: principalId
}

module workerImage 'modules/worker-image.bicep' = {
  name: 'worker-image'
  scope: rg
  params: {
    exists: workerExists
    name: workerAppName
    placeholderImage: placeholderImage
  }
}

module worker 'modules/worker.bicep' = {
  name: 'worker'
  scope: rg
  dependsOn: [
    // AcrPull must be in place before the app pulls from the registry.
    rbac
  ]
  params: {
    location: location
    tags: tags
    name: workerAppName
    environmentId: containerAppsEnvironment.outputs.id
    workloadProfileType: workerWorkloadProfile
    workloadProfileName: workerWorkloadProfileName
    maxReplicas: workerMaxReplicas
    image: workerImage.outputs.image
    registryLoginServer: registry.outputs.loginServer
    identityId: identities.outputs.workerIdentityId
    // Stopping replicas drain: the host waits DrainTimeout (+5 s) for the running batch, inside the grace period.
    terminationGracePeriodSeconds: workerDrainSeconds + 30
    settings: union(
      sharedSettings,
      identitySettings(identities.outputs.workerIdentityClientId, identities.outputs.workerIdentityPrincipalId),
      {
        ASPNETCORE_URLS: 'http://+:8080'
        Inference__Onnx__ExecutionProvider: workerWorkloadProfile == 'Consumption' ? 'Cpu' : 'Auto'
        Inference__WorkerHost__DrainTimeout: '00:01:00'
      }
    )
  }
}

module scalerRole 'modules/scaler-role.bicep' = {
  name: 'scaler-role'
  scope: rg
  params: {
    functionsPrincipalId: identities.outputs.functionsIdentityPrincipalId
    workerAppName: worker.outputs.name
    environmentName: containerAppsEnvironment.outputs.name
    workerIdentityName: identities.outputs.workerIdentityName
  }
}

module functions 'modules/function-app.bicep' = {
  name: 'functions'
  scope: rg
  dependsOn: [
    // Host storage, Service Bus, Redis and telemetry access, before the host first starts.
    rbac
    scalerRole
  ]
  params: {
    location: location
    tags: tags
    planName: 'plan-${resourceToken}'
    name: functionAppName
    identityId: identities.outputs.functionsIdentityId
    identityClientId: identities.outputs.functionsIdentityClientId
    storageAccountName: hostStorage.outputs.name
    storageBlobEndpoint: hostStorage.outputs.blobEndpoint
    deploymentContainerName: hostStorage.outputs.containerNames[0]
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
    settings: union(
      sharedSettings,
      identitySettings(identities.outputs.functionsIdentityClientId, identities.outputs.functionsIdentityPrincipalId),
      {
        Inference__Orchestrator__Provider: 'ContainerApps'
        Inference__Orchestrator__ContainerApps__SubscriptionId: subscription().subscriptionId
        Inference__Orchestrator__ContainerApps__ResourceGroup: rg.name
        Inference__Orchestrator__ContainerApps__AppName: worker.outputs.name
        Inference__Orchestrator__ContainerApps__ManagedIdentityClientId: identities.outputs.functionsIdentityClientId
        Inference__Scaling__MinReplicas: '0'
        Inference__Scaling__MaxReplicas: string(workerMaxReplicas)
        SCALER_SCHEDULE: scalerSchedule
      }
    )
  }
}

// Outputs azd stores in .azure/<env>/.env (and that the README's commands use).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_CONTAINER_REGISTRY_NAME string = registry.outputs.name
output AZURE_CONTAINER_APPS_ENVIRONMENT_NAME string = containerAppsEnvironment.outputs.name
output AZURE_CONTAINER_APPS_ENVIRONMENT_ID string = containerAppsEnvironment.outputs.id
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output AZURE_MODELS_CONTAINER_NAME string = storage.outputs.containerNames[0]
output AZURE_SERVICEBUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output AZURE_SERVICEBUS_QUEUE_NAME string = serviceBus.outputs.queueName
output AZURE_REDIS_HOST_NAME string = redis.outputs.hostName
output AZURE_FUNCTIONS_IDENTITY_CLIENT_ID string = identities.outputs.functionsIdentityClientId
output AZURE_WORKER_IDENTITY_CLIENT_ID string = identities.outputs.workerIdentityClientId
output SERVICE_FUNCTIONS_NAME string = functions.outputs.name
output SERVICE_FUNCTIONS_URI string = 'https://${functions.outputs.defaultHostName}'
output SERVICE_WORKER_NAME string = worker.outputs.name
output WORKER_WORKLOAD_PROFILE string = workerWorkloadProfile
