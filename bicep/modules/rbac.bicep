// Data-plane access for the two identities and the deploying user. Every grant is a role assignment (or, for Redis,
// an access policy assignment); no key, SAS or password exists anywhere in the deployment.
// Role definition ids are Azure built-in roles, from
// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
// Scaling the worker app needs the app to exist first, so that grant is in scaler-role.bicep.

@description('Principal (object) id of the Functions identity.')
param functionsPrincipalId string

@description('Principal (object) id of the worker identity.')
param workerPrincipalId string

@description('Object id of the deploying user or service principal (empty: no grant).')
param userPrincipalId string

@description('Principal type of userPrincipalId.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param userPrincipalType string

@description('Name of the model store\'s storage account.')
param storageAccountName string

@description('Name of the Functions host\'s storage account (AzureWebJobsStorage and the deployment package).')
param hostStorageAccountName string

@description('Name of the models container.')
param modelsContainerName string

@description('Name of the Service Bus namespace.')
param serviceBusName string

@description('Name of the Azure Managed Redis cluster.')
param redisName string

@description('Name of the container registry.')
param registryName string

@description('Name of the Application Insights component.')
param applicationInsightsName string

var roles = {
  // Storage Blob Data Owner: the Functions host storage (AzureWebJobsStorage) needs blob read/write and container
  // creation (timer singleton leases, function keys in azure-webjobs-secrets), and the Flex Consumption plan reads
  // its deployment package. The docs name this role as what covers the host's basic needs. Granted on the host's own
  // account only, never on the model store.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Storage Blob Data Contributor: the deploying user uploads models; nobody else can write them.
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  // Storage Blob Data Reader: the worker downloads manifests and weights; the gateway reads manifests (validation,
  // model metadata) and a generation model's tokenizer from its weights file.
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  // Azure Service Bus Data Owner: the gateway sends jobs and the scaler and /status read the queue depth with
  // ServiceBusAdministrationClient.GetQueueRuntimePropertiesAsync, which needs the Manage claim; among the built-in
  // data roles only Data Owner carries it (Sender and Receiver do not).
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419'
  // Azure Service Bus Data Receiver: the worker receives, completes, abandons and dead-letters; it never sends or
  // reads runtime properties.
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  // AcrPull: the worker app pulls its image with its identity.
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  // Monitoring Metrics Publisher: Entra-authenticated Application Insights ingestion (local auth is disabled).
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// Queue and Table Data Contributor are not granted: the Functions app has no queue or blob trigger and no Durable
// Functions, and HTTP + timer triggers use host storage blobs only.

resource storage 'Microsoft.Storage/storageAccounts@2025-06-01' existing = {
  name: storageAccountName
}

resource hostStorage 'Microsoft.Storage/storageAccounts@2025-06-01' existing = {
  name: hostStorageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-06-01' existing = {
  parent: storage
  name: 'default'
}

resource modelsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' existing = {
  parent: blobService
  name: modelsContainerName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusName
}

resource registry 'Microsoft.ContainerRegistry/registries@2025-04-01' existing = {
  name: registryName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource redis 'Microsoft.Cache/redisEnterprise@2025-04-01' existing = {
  name: redisName
}

resource redisDatabase 'Microsoft.Cache/redisEnterprise/databases@2025-04-01' existing = {
  parent: redis
  name: 'default'
}

// Functions identity: Storage Blob Data Owner on its host account (host storage, deployment package).
resource functionsStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, functionsPrincipalId, roles.storageBlobDataOwner)
  scope: hostStorage
  properties: {
    principalId: functionsPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

// Worker identity: Storage Blob Data Reader on the models container only.
resource workerModels 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(modelsContainer.id, workerPrincipalId, roles.storageBlobDataReader)
  scope: modelsContainer
  properties: {
    principalId: workerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
  }
}

// Functions identity: Storage Blob Data Reader on the models container (manifests, tokenizers).
resource functionsModels 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(modelsContainer.id, functionsPrincipalId, roles.storageBlobDataReader)
  scope: modelsContainer
  properties: {
    principalId: functionsPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
  }
}

// Deploying user: Storage Blob Data Contributor on the models container, to upload models with --auth-mode login.
resource userModels 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(modelsContainer.id, userPrincipalId, roles.storageBlobDataContributor)
  scope: modelsContainer
  properties: {
    principalId: userPrincipalId
    principalType: userPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

// Functions identity: Azure Service Bus Data Owner on the namespace (send + queue runtime properties).
resource functionsServiceBus 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(serviceBus.id, functionsPrincipalId, roles.serviceBusDataOwner)
  scope: serviceBus
  properties: {
    principalId: functionsPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataOwner)
  }
}

// Worker identity: Azure Service Bus Data Receiver on the namespace.
resource workerServiceBus 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(serviceBus.id, workerPrincipalId, roles.serviceBusDataReceiver)
  scope: serviceBus
  properties: {
    principalId: workerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)
  }
}

// Worker identity: AcrPull on the registry.
resource workerAcrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, workerPrincipalId, roles.acrPull)
  scope: registry
  properties: {
    principalId: workerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)
  }
}

// Functions identity: Monitoring Metrics Publisher on Application Insights.
resource functionsTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, functionsPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    principalId: functionsPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

// Redis data access: the database's built-in 'default' access policy (full data access) for each identity, which
// then signs in with its principal id as the user name. Azure Managed Redis applies one access policy change at a
// time, hence batchSize(1).
var redisUsers = [
  {
    name: 'functions'
    principalId: functionsPrincipalId
  }
  {
    name: 'worker'
    principalId: workerPrincipalId
  }
]

@batchSize(1)
resource redisAccess 'Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments@2025-04-01' = [
  for user in redisUsers: {
    parent: redisDatabase
    name: user.name
    properties: {
      accessPolicyName: 'default'
      user: {
        objectId: user.principalId
      }
    }
  }
]
