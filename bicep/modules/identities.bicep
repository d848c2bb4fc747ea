// Two user-assigned managed identities, one per compute resource, so each gets only the roles it needs:
// the Functions app (gateway + scaler) sends jobs, reads queue depth and scales the worker app;
// the worker receives jobs, reads models and pulls its image. Neither holds a key or a password.

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the Functions app identity.')
param functionsIdentityName string

@description('Name of the worker identity.')
param workerIdentityName string

resource functionsIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: functionsIdentityName
  location: location
  tags: tags
}

resource workerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: workerIdentityName
  location: location
  tags: tags
}

output functionsIdentityId string = functionsIdentity.id
output functionsIdentityName string = functionsIdentity.name
output functionsIdentityClientId string = functionsIdentity.properties.clientId
output functionsIdentityPrincipalId string = functionsIdentity.properties.principalId
output workerIdentityId string = workerIdentity.id
output workerIdentityName string = workerIdentity.name
output workerIdentityClientId string = workerIdentity.properties.clientId
output workerIdentityPrincipalId string = workerIdentity.properties.principalId
