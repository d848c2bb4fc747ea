// The Functions app (HTTP gateway + timer scaler) on a Flex Consumption plan (FC1), .NET isolated 10.
// Everything it reaches it reaches as its user-assigned identity: the host storage (AzureWebJobsStorage__credential =
// managedidentity), the deployment package container, Service Bus, Blob, Redis (Entra ID) and ARM (to scale the
// worker). Application Insights ingestion is authenticated with Entra ID too (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource (azd-service-name is added to the app).')
param tags object

@description('Name of the Flex Consumption plan.')
param planName string

@description('Name of the function app.')
param name string

@description('Resource id of the Functions identity.')
param identityId string

@description('Client id of the Functions identity.')
param identityClientId string

@description('Name of the storage account that hosts AzureWebJobsStorage and the deployment container.')
param storageAccountName string

@description('Blob endpoint of that storage account (https://ACCOUNT.blob.core.windows.net/).')
param storageBlobEndpoint string

@description('Container the plan deploys the package to.')
param deploymentContainerName string

@description('Application Insights connection string (its InstrumentationKey is no secret: local auth is disabled).')
param applicationInsightsConnectionString string

@description('Most instances the plan may run.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Memory of one instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('App settings of the platform (name: value, all strings); the host settings are added here.')
param settings object

resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

var hostSettings = {
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource functionApp 'Microsoft.Web/sites@2025-03-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'functions' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'dotnet-isolated'
        version: '10.0'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      appSettings: [for setting in items(union(settings, hostSettings)): {
        name: setting.key
        value: setting.value
      }]
    }
  }
}

// No publishing passwords: azd deploys with the signed-in user's Entra token.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
