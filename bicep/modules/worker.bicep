// The GPU worker: a Container App with no ingress that pulls micro-batches from the jobs queue. It runs on the GPU
// workload profile (or Consumption when CPU-only), scales between 0 and maxReplicas, and has no scale rule of its own:
// the scaler (the Functions timer) sets its replica count through ARM (Inference:Orchestrator:Provider=ContainerApps).
// It pulls its image from the registry with its user-assigned identity, and reaches Service Bus, Blob and Redis with
// the same identity (AZURE_CLIENT_ID for DefaultAzureCredential).

@description('Azure region of the resources.')
param location string

@description('Tags applied to the app (azd-service-name is added here).')
param tags object

@description('Name of the Container App (at most 32 lower-case letters, digits and hyphens).')
@maxLength(32)
param name string

@description('Resource id of the Container Apps environment.')
param environmentId string

@description('Workload profile type the worker runs on.')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
  'Consumption'
])
param workloadProfileType string

@description('Name of the workload profile in the environment that the app runs on.')
param workloadProfileName string

@description('Most replicas the scaler may ask for.')
@minValue(1)
param maxReplicas int

@description('Container image.')
param image string

@description('Login server of the container registry the image comes from.')
param registryLoginServer string

@description('Resource id of the worker identity.')
param identityId string

@description('Settings passed as environment variables (name: value, all strings).')
param settings object

@description('Seconds a stopping replica gets to finish its batch (SIGTERM, then SIGKILL).')
param terminationGracePeriodSeconds int

// The first (only) container of a GPU app gets the whole GPU; a replica asks for the profile's full size.
var resourcesByProfile = {
  'Consumption-GPU-NC8as-T4': {
    cpu: json('8.0')
    memory: '56Gi'
  }
  'Consumption-GPU-NC24-A100': {
    cpu: json('24.0')
    memory: '220Gi'
  }
  Consumption: {
    cpu: json('4.0')
    memory: '8Gi'
  }
}

resource worker 'Microsoft.App/containerApps@2025-01-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'worker' })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environmentId
    workloadProfileName: workloadProfileName
    configuration: {
      activeRevisionsMode: 'Single'
      registries: [
        {
          server: registryLoginServer
          identity: identityId
        }
      ]
    }
    template: {
      terminationGracePeriodSeconds: terminationGracePeriodSeconds
      containers: [
        {
          name: 'worker'
          image: image
          resources: resourcesByProfile[workloadProfileType]
          env: [for setting in items(settings): {
            name: setting.key
            value: setting.value
          }]
          probes: [
            {
              type: 'Startup'
              httpGet: {
                path: '/healthz'
                port: 8080
              }
              periodSeconds: 5
              failureThreshold: 60
            }
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: 8080
              }
              periodSeconds: 30
              failureThreshold: 3
            }
          ]
        }
      ]
      scale: {
        minReplicas: 0
        maxReplicas: maxReplicas
      }
    }
  }
}

output name string = worker.name
output id string = worker.id
