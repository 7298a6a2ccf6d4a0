// The app's user-assigned managed identity. User-assigned rather than system-assigned so that its
// role assignments can be created in the same deployment, before the Function App exists, and so
// that deleting and recreating the app keeps the same principal (and the cluster's role grants).
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
