// The Key Vault a request's `secrets` are read from: a new one in RBAC mode, or an existing one
// (it must be in RBAC mode: access policies are not used). Key Vault Secrets User for the app's
// identity, scoped to this vault only: it reads secret values, never lists, writes or deletes.
param principalId string
param location string
param tags object = {}

@description('Name of the vault: created when createVault is true, else an existing vault in this resource group.')
param name string
param createVault bool

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource newVault 'Microsoft.KeyVault/vaults@2023-07-01' = if (createVault) {
  //checkov:skip=CKV_AZURE_110: enablePurgeProtection is true below; checkov's Bicep reader does not see the properties of a conditional resource (`= if (...)`): the same vault without the condition passes this check.
  //checkov:skip=CKV_AZURE_42: enableSoftDelete and enablePurgeProtection are true below (same reader limitation as CKV_AZURE_110).
  //checkov:skip=CKV_AZURE_109: The Flex Consumption app has no VNet integration in this template, so it reaches the vault over its public endpoint; every read needs an Entra token of an identity holding Key Vault Secrets User on this vault (RBAC mode).
  //checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: public network access with RBAC; a private endpoint is the opt-in hardening described in docs/deploy.md.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: name
  dependsOn: [newVault]
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vnode-batch: read the secret values requests mount as files.'
  }
}

output uri string = vault.properties.vaultUri
