// Lets the scaler (the Functions identity) set the worker app's replica count, and nothing else.
// Built-in Contributor scoped to the app would allow the same writes plus every other action on the app (secrets,
// ingress, auth settings), and still fail a full PUT of the app, which ARM checks against the environment and the
// identity it references (LinkedAuthorizationFailed for Microsoft.App/managedEnvironments/join/action). So: a custom
// role with the few actions a replica-count update uses, assigned at the three scopes it is checked against
// (the worker app, its environment, the worker identity). At the environment and identity scopes only the join and
// assign actions apply, since those scopes hold no container apps.
// Creating a custom role needs Microsoft.Authorization/roleDefinitions/write (Owner or User Access Administrator).

@description('Principal (object) id of the Functions identity.')
param functionsPrincipalId string

@description('Name of the worker Container App.')
param workerAppName string

@description('Name of the Container Apps environment.')
param environmentName string

@description('Name of the worker identity.')
param workerIdentityName string

resource workerApp 'Microsoft.App/containerApps@2025-01-01' existing = {
  name: workerAppName
}

resource environment 'Microsoft.App/managedEnvironments@2025-01-01' existing = {
  name: environmentName
}

resource workerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: workerIdentityName
}

// Custom role "ServerlessInference worker scaler", one action per need of ContainerAppsWorkerOrchestrator, which sends
// exactly two ARM requests, both on the worker app:
// - GET the app (its template.scale.minReplicas is the current count): Microsoft.App/containerApps/read.
// - PATCH the app's template.scale (a merge patch): Microsoft.App/containerApps/write.
// - ARM checks the linked resources of a written app, the environment it runs in and the user-assigned identity it
//   carries, against the caller: Microsoft.App/managedEnvironments/join/action and
//   Microsoft.ManagedIdentity/userAssignedIdentities/assign/action.
// Nothing reads revisions or replicas (the count is the app's minReplicas, not what runs), so no revisions/* action.
resource scalerRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'serverless-inference-worker-scaler')
  properties: {
    roleName: 'ServerlessInference worker scaler (${resourceGroup().name})'
    description: 'Reads and updates the replica count of the ServerlessInference worker Container App.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: [
          'Microsoft.App/containerApps/read'
          'Microsoft.App/containerApps/write'
          'Microsoft.App/managedEnvironments/join/action'
          'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

// Role assignments take the subscription-level id of a role definition, whatever scope it was created at.
var scalerRoleId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', scalerRole.name)

resource onWorkerApp 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workerApp.id, functionsPrincipalId, scalerRole.name)
  scope: workerApp
  properties: {
    principalId: functionsPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: scalerRoleId
  }
}

resource onEnvironment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(environment.id, functionsPrincipalId, scalerRole.name)
  scope: environment
  properties: {
    principalId: functionsPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: scalerRoleId
  }
}

resource onWorkerIdentity 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workerIdentity.id, functionsPrincipalId, scalerRole.name)
  scope: workerIdentity
  properties: {
    principalId: functionsPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: scalerRoleId
  }
}

output roleDefinitionId string = scalerRoleId
