// Container Apps environment with workload profiles: the built-in Consumption profile, plus a serverless GPU profile
// (Consumption-GPU-NC8as-T4 or Consumption-GPU-NC24-A100) unless the worker runs CPU-only on Consumption.
// Serverless GPUs need a workload-profiles environment, a region that offers them and GPU quota.
// Logs go to Log Analytics through a diagnostic setting ('azure-monitor' destination), so no workspace key is needed.

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the environment.')
param name string

@description('Workload profile type the worker runs on: a serverless GPU profile, or Consumption for CPU only.')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
  'Consumption'
])
param workerWorkloadProfileType string

@description('Name given to the GPU workload profile in the environment.')
param gpuWorkloadProfileName string

@description('Resource id of the Log Analytics workspace that receives the logs.')
param logAnalyticsWorkspaceId string

var consumptionProfile = {
  name: 'Consumption'
  workloadProfileType: 'Consumption'
}

var gpuProfiles = workerWorkloadProfileType == 'Consumption'
  ? []
  : [
      {
        name: gpuWorkloadProfileName
        workloadProfileType: workerWorkloadProfileType
      }
    ]

resource environment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'azure-monitor'
    }
    workloadProfiles: concat([consumptionProfile], gpuProfiles)
    zoneRedundant: false
  }
}

resource logs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'logs-to-log-analytics'
  scope: environment
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

output id string = environment.id
output name string = environment.name
