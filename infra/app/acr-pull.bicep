// AcrPull for the app's identity on one existing registry (deployed into the registry's resource
// group): the app trades its Entra token for an ACR refresh token (Azure/acr docs/AAD-OAuth.md) and
// keeps it in the pull Secret its Jobs use. Scoped to the registry alone.
param principalId string
param registryName string

var acrPull = '7f951dda-4ed3-4680-a7ca-43fe172d538d'

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource pull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, acrPull)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPull)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vnode-batch: pull private images for Jobs (ACR token exchange).'
  }
}

output loginServer string = registry.properties.loginServer
