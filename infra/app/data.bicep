// The data account a request's `input`/`output` live in. Entra ID only (shared keys off): the app
// signs user delegation SAS URLs with a key it gets as itself (Storage Blob Delegator), and a SAS
// grants at most the signer's own rights, so it also holds Storage Blob Data Contributor. Both are
// scoped to this account alone; the account holds nothing else.
param principalId string
param name string
param location string
param tags object = {}

@description('Containers to create (requests name one of them in input/output).')
param containerNames array

var storageBlobDelegator = 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35: Workloads on the virtual node (ACI) and the app reach the account over its public endpoint with user delegation SAS URLs or Entra tokens; shared keys are off, so a network path alone grants nothing. A private endpoint is the opt-in hardening in docs/deploy.md.
  //checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: ACI workloads and the app use the public endpoint; shared keys are off.
  //checkov:skip=CKV_AZURE_206: Batch inputs and results are copies of data kept elsewhere or outputs that can be recomputed; choose GRS by editing this template where they are not.
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
  parent: account
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

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for container in containerNames: {
    parent: blobService
    name: container
    properties: {
      publicAccess: 'None'
    }
  }
]

resource delegator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, storageBlobDelegator)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDelegator)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vnode-batch: get user delegation keys to sign SAS URLs for Jobs.'
  }
}

resource dataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, storageBlobDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vnode-batch: what the SAS URLs grant (read inputs, write outputs) and listing outputs.'
  }
}

output blobEndpoint string = account.properties.primaryEndpoints.blob
