// What the app's identity may do in its own resource group: data-plane access to its storage
// account and telemetry ingestion into its Application Insights. Each assignment is scoped to the
// one resource it is about, never to the resource group.
param principalId string
param storageAccountName string
param applicationInsightsName string

var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Storage Blob Data Owner on the account: the Functions docs' role for an identity-based
// AzureWebJobsStorage. The host creates and leases blobs in its own containers (azure-webjobs-hosts
// for timer singletons and schedule state, azure-webjobs-secrets for keys), and Flex Consumption
// writes and reads the deployment package in the deployment container with this same identity, so
// no separate container-scoped role is needed. Account scope, because the host creates its
// containers on first start.
resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vnode-batch: Functions host storage (leases, keys) and the Flex deployment package.'
  }
}

// Storage Queue Data Contributor rather than the narrower Reader + Message Processor + Message
// Sender trio. The trio lacks two permissions this app uses: Update Message (messages/write), which
// the queue extension calls to release a message whose function failed back onto the queue with
// its visibility timeout (MicrosoftDocs/azure-docs#120932); and queues/write, which the host's
// output binding and poison handling use to create a queue if it is missing, as does
// shared/adapters/queues.py (ensure). With the trio, the first failed function would 403 instead of
// being retried. The account holds only this app's queues.
resource queueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vnode-batch: queue trigger, outputs, re-enqueue with delay, poison handling.'
  }
}

// Storage Table Data Contributor: the host writes diagnostic events to table storage of
// AzureWebJobsStorage (AzureWebJobsStorage__tableServiceUri) and logs AZFD0003 errors without it.
resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vnode-batch: Functions host diagnostic events.'
  }
}

// Monitoring Metrics Publisher on the component: Entra ID-authenticated telemetry ingestion
// (the component has local auth disabled).
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vnode-batch: Application Insights ingestion with Entra ID.'
  }
}
