// Container registry for the worker image (azd builds and pushes it). No admin user and no anonymous pull:
// the worker pulls with its managed identity (AcrPull, rbac.bicep).

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the registry (5-50 letters and digits).')
@minLength(5)
@maxLength(50)
param name string

@description('Registry tier. Premium adds artifact streaming, which shortens GPU cold starts.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param sku string

resource registry 'Microsoft.ContainerRegistry/registries@2025-04-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

output name string = registry.name
output loginServer string = registry.properties.loginServer
