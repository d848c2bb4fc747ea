// Azure Managed Redis (Microsoft.Cache/redisEnterprise, API 2025-04-01, the first GA version) holding job results and
// the worker registry. Chosen over Azure Cache for Redis (Microsoft.Cache/redis) because that service is being retired
// and Azure Managed Redis is its successor; both support Microsoft Entra ID, but here access keys are disabled outright
// (accessKeysAuthentication: 'Disabled') and each identity is granted data access by an access policy assignment
// (see rbac.bicep). Clients connect to HOST:10000 over TLS and authenticate with a token for the identity, using the
// identity's principal (object) id as the Redis user name (Inference:Redis:Authentication=EntraId).
// Clustering policy EnterpriseCluster exposes one endpoint, so a client needs no cluster support; the Redis provider
// hash-tags each queue's keys, so its multi-key scripts stay in one slot either way.
// Durability: persistence (AOF or RDB) is a database setting, off here; AOF's 'always' frequency is deprecated by Azure,
// so at best a restart can lose about a second of writes, and the job reconciler fails, with the reason, a job whose
// queue entry was lost (docs/azure.md).

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the Azure Managed Redis cluster.')
param name string

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
param sku string

@description('Replicate to a second node (doubles the cost; results and the registry survive a node loss).')
param highAvailability bool

resource cluster 'Microsoft.Cache/redisEnterprise@2025-04-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
  }
  properties: {
    minimumTlsVersion: '1.2'
    highAvailability: highAvailability ? 'Enabled' : 'Disabled'
  }
}

resource database 'Microsoft.Cache/redisEnterprise/databases@2025-04-01' = {
  parent: cluster
  name: 'default'
  properties: {
    clientProtocol: 'Encrypted'
    port: 10000
    clusteringPolicy: 'EnterpriseCluster'
    // Nothing is evicted: a job record has a TTL, so VolatileLRU would drop the record of a job still queued under memory
    // pressure (the job would then end 'record missing'). When memory is full, writes fail and the gateway answers 503.
    evictionPolicy: 'NoEviction'
    accessKeysAuthentication: 'Disabled'
  }
}

output name string = cluster.name
output hostName string = cluster.properties.hostName
output port int = database.properties.port
