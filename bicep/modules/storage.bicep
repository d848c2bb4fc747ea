// A storage account with its blob containers. main.bicep makes two: the model store (container `models`, blobs
// {name}/{version}/model.onnx + manifest.json), which only the uploader may write, and the Functions host's (its
// deployment-package container, plus the azure-webjobs-* containers the host creates itself), which the Functions
// identity owns. Kept apart because the host needs Storage Blob Data Owner on its account, and on a shared account that
// would let the gateway overwrite models. Shared-key access is off: every client authenticates with Microsoft Entra ID.

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the storage account (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Blob containers to create (lower-case letters, digits and hyphens).')
param containerNames string[]

resource storage 'Microsoft.Storage/storageAccounts@2025-06-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-06-01' = {
  parent: storage
  name: 'default'
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' = [
  for containerName in containerNames: {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output containerNames string[] = [for (containerName, i) in containerNames: containers[i].name]
