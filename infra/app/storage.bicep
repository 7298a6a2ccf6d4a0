// The app's storage account: the Functions host's own storage (AzureWebJobsStorage), the Flex
// Consumption deployment package container, and the request/event queues.
// Entra ID only: shared key access is off, so no account key or SAS can reach it.
param name string
param location string
param tags object = {}

@description('Blob container Flex Consumption deploys the app package to.')
param deploymentContainerName string

@description('Queues the app binds to: requests, requests-poison, events.')
param queueNames array

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35: The Flex Consumption app has no VNet integration in this template, so the account must accept its traffic from the public endpoint; access is still Entra ID only (shared keys disabled) and limited by RBAC to the app's identity.
  //checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: without VNet integration and private endpoints the app reaches the account over its public endpoint; shared keys are off, so a network path alone grants nothing.
  //checkov:skip=CKV_AZURE_206: The account holds transient queue messages, host leases and the deployment package, all recreated by `azd up`/`azd deploy`; LRS is the right price for that, geo-replication would protect nothing of value.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
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

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// Created here rather than by the host on first use: the trigger's listener and the deadletter
// function start against queues that exist, and a typo in a queue name fails the deployment
// instead of silently creating an unused queue.
resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
