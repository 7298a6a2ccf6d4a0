// vnode-batch: everything `azd up` deploys and `azd down` removes.
//
// Two resource groups:
//   rg-<env>      the Function App (Flex Consumption), its identity, storage, monitoring
//   rg-<env>-aks  EMPTY at deploy time; the app bootstraps vnet, subnets and AKS into it with its
//                 managed identity, which holds rights only there (app/cluster-rbac.bicep)
// Nothing here uses an account key or a connection string with a secret: storage has shared key
// access disabled and every data-plane call authenticates with the user-assigned identity.
//
// Layout follows Azure-Samples/functions-quickstart-python-azd (main.bicep + app/*.bicep), with
// plain resources instead of registry (AVM) modules so that the tests in tests/infra and checkov
// can read every property that is deployed.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name: part of every resource name and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Region of the app resources; it must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('App resource group name (default: rg-<environmentName>).')
param resourceGroupName string = ''

@description('Cluster resource group name (default: rg-<environmentName>-aks). Created empty; the app bootstraps into it.')
param clusterResourceGroupName string = ''

@description('Region of the cluster and its network (default: location). It must offer AKS virtual nodes.')
param clusterLocation string = ''

// --- app settings exposed as parameters (defaults = the seed's values / Settings defaults) -------

@description('Client id of the Entra ID app registration for the requests API (azd env VNB_API_CLIENT_ID).')
param apiClientId string

@description('Queue of batch requests (VNB_REQUESTS_QUEUE); its poison queue is <name>-poison, so at most 56 characters (the host gives no poison queue to a longer name).')
@maxLength(56)
param requestsQueueName string = 'vnb-requests'

@description('Queue of outcome events (VNB_EVENTS_QUEUE).')
param eventsQueueName string = 'vnb-events'

@description('Queue of the follow-up reconcile passes (VNB_FOLLOWUP_QUEUE): while Jobs are in flight each pass queues the next one a few seconds later, so outcomes are reported within seconds; an idle app queues nothing.')
param followupQueueName string = 'vnb-followup'

@description('NCRONTAB of the reconcile timer (VNB_RECONCILE_SCHEDULE). Every 30 s is the backstop: while Jobs are in flight the follow-up passes report outcomes within seconds (docs/performance.md section 4).')
param reconcileSchedule string = '*/30 * * * * *'

@description('NCRONTAB of the schedules timer (VNB_SCHEDULES_TIMER).')
param schedulesTimer string = '0 * * * * *'

@description('Comma-separated registries images may come from (VNB_ALLOWED_REGISTRIES).')
param allowedRegistries string = 'mcr.microsoft.com'

@description('AKS cluster the app bootstraps (VNB_CLUSTER_NAME).')
param clusterName string = 'vnode-batch-aks'

@description('Virtual network address space (VNB_VNET_CIDR).')
param vnetCidr string = '10.0.0.0/8'

@description('AKS node subnet (VNB_CLUSTER_SUBNET_CIDR).')
param clusterSubnetCidr string = '10.240.0.0/16'

@description('Virtual-node (ACI) subnet (VNB_VNODE_SUBNET_CIDR).')
param vnodeSubnetCidr string = '10.241.0.0/16'

@description('Kubernetes service CIDR (VNB_SERVICE_CIDR). The seed\'s value lies inside the vnet range; it overlaps no subnet.')
param serviceCidr string = '10.0.0.0/16'

@description('Cluster DNS service IP, inside the service CIDR (VNB_DNS_SERVICE_IP).')
param dnsServiceIp string = '10.0.0.10'

@description('System node pool VM size (VNB_NODE_VM_SIZE): the one always-on cost once the cluster exists.')
param nodeVmSize string = 'Standard_D2s_v5'

@minValue(1)
@description('System node pool size (VNB_NODE_COUNT).')
param nodeCount int = 1

@minValue(1)
@maxValue(1000)
@description('Flex Consumption: most instances the app may scale out to.')
param maximumInstanceCount int = 100

@allowed([512, 2048, 4096])
@description('Flex Consumption: memory per instance (MB).')
param instanceMemoryMB int = 2048

@description('Private registry (ACR) the app pulls images from with its identity (AcrPull on it only); empty: none.')
param registryName string = ''

@description('Resource group of registryName (default: the app resource group).')
param registryResourceGroupName string = ''

@description('Key Vault for request secrets (Key Vault Secrets User on it only): empty for none, else an existing RBAC-mode vault in the app resource group, or a new one with createKeyVault.')
param keyVaultName string = ''

@description('Create keyVaultName (RBAC mode, purge protection) instead of using an existing vault.')
param createKeyVault bool = false

@description('Containers of a new data account for request input/output (Storage Blob Delegator and Storage Blob Data Contributor on it only); empty: no data account.')
param dataContainers array = []

@description('Teams file in the app package (VNB_TEAMS_FILE, docs/operations.md "Sharing between teams"); empty: no tenancy.')
param teamsFile string = ''

@description('Easy Auth authorization policy: client application ids that may call the API (allowedApplications); with apiAllowedPrincipals and apiAllowedGroups empty, any signed-in principal of the tenant may (then only function keys and the teams file tell teams apart). List every team member here.')
param apiAllowedApplications array = []

@description('Easy Auth authorization policy: object ids of users and service principals that may call the API (allowedPrincipals.identities).')
param apiAllowedPrincipals array = []

@description('Easy Auth authorization policy: object ids of groups whose members may call the API (allowedPrincipals.groups).')
param apiAllowedGroups array = []

@description('Address that receives alert mails (docs/operations.md "Alerts"); empty: no mail.')
param alertEmail string = ''

@secure()
@description('HTTPS webhook called with the common alert schema when an alert fires; empty: none.')
param alertWebhookUrl string = ''

@minValue(5)
@description('Alert when a request has waited longer than this many minutes for the cluster or ACI capacity.')
param waitingAlertMinutes int = 60

@minValue(5)
@description('Alert when no reconcile pass was counted for this many minutes (the timer runs every 30 s).')
param reconcileSilenceMinutes int = 15

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var appResourceGroupName = !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
var aksResourceGroupName = !empty(clusterResourceGroupName) ? clusterResourceGroupName : 'rg-${environmentName}-aks'
var aksLocation = !empty(clusterLocation) ? clusterLocation : location
var functionAppName = 'func-vnb-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var poisonQueueName = '${requestsQueueName}-poison'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: appResourceGroupName
  location: location
  tags: tags
}

// Not tagged azd-env-name: azd looks for the service's resource group by that tag, and this group
// holds no azd service. azd down still deletes it: the role assignments below are deployed into it,
// so it is among the deployment's resource groups.
resource clusterRg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: aksResourceGroupName
  location: aksLocation
  tags: {
    'vnb-env-name': environmentName
    'vnb-role': 'aks-bootstrap-target'
  }
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-vnb-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'stvnb${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    queueNames: [
      requestsQueueName
      poisonQueueName
      eventsQueueName
      followupQueueName
    ]
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-vnb-${resourceToken}'
    applicationInsightsName: 'appi-vnb-${resourceToken}'
    location: location
    tags: tags
  }
}

// Alert rules and the operators' workbook over the app's OpenTelemetry metrics (docs/operations.md "Alerts").
module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    location: location
    tags: tags
    alertEmail: alertEmail
    alertWebhookUrl: alertWebhookUrl
    waitingAlertMinutes: waitingAlertMinutes
    reconcileSilenceMinutes: reconcileSilenceMinutes
  }
}

module workbook 'app/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    location: location
    tags: tags
  }
}

module registryPull 'app/acr-pull.bicep' = if (!empty(registryName)) {
  name: 'registry-pull'
  scope: resourceGroup(!empty(registryResourceGroupName) ? registryResourceGroupName : rg.name)
  params: {
    principalId: identity.outputs.principalId
    registryName: registryName
  }
}

module keyVault 'app/keyvault.bicep' = if (!empty(keyVaultName)) {
  name: 'keyvault'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    name: keyVaultName
    createVault: createKeyVault
    location: location
    tags: tags
  }
}

module dataAccount 'app/data.bicep' = if (!empty(dataContainers)) {
  name: 'data'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    name: 'stvnbdata${take(resourceToken, 11)}'
    containerNames: dataContainers
    location: location
    tags: tags
  }
}

// Every VNB_* setting the app reads in Azure (shared/config/settings.py; tests/infra checks the keys).
// The storage and monitoring connection settings are added in app/api.bicep.
var appSettings = {
  VNB_CLUSTER_MODE: 'aks'
  VNB_SUBSCRIPTION_ID: subscription().subscriptionId
  VNB_RESOURCE_GROUP: clusterRg.name
  VNB_LOCATION: aksLocation
  VNB_APP_PRINCIPAL_ID: identity.outputs.principalId
  VNB_REQUESTS_QUEUE: requestsQueueName
  VNB_EVENTS_QUEUE: eventsQueueName
  VNB_FOLLOWUP_QUEUE: followupQueueName
  VNB_RECONCILE_SCHEDULE: reconcileSchedule
  VNB_SCHEDULES_TIMER: schedulesTimer
  VNB_ALLOWED_REGISTRIES: allowedRegistries
  VNB_ACR_REGISTRIES: !empty(registryName) ? registryPull!.outputs.loginServer : ''
  VNB_KEY_VAULT_URL: !empty(keyVaultName) ? keyVault!.outputs.uri : ''
  VNB_DATA_ACCOUNT_URL: !empty(dataContainers) ? dataAccount!.outputs.blobEndpoint : ''
  VNB_DATA_CONTAINERS: join(dataContainers, ',')
  VNB_CLUSTER_NAME: clusterName
  VNB_VNET_CIDR: vnetCidr
  VNB_CLUSTER_SUBNET_CIDR: clusterSubnetCidr
  VNB_VNODE_SUBNET_CIDR: vnodeSubnetCidr
  VNB_SERVICE_CIDR: serviceCidr
  VNB_DNS_SERVICE_IP: dnsServiceIp
  VNB_NODE_VM_SIZE: nodeVmSize
  VNB_NODE_COUNT: string(nodeCount)
  VNB_TEAMS_FILE: teamsFile
  // Easy Auth (authsettingsV2 in app/api.bicep) runs in front of the API: its principal headers can be trusted.
  VNB_EASY_AUTH: 'true'
  // Metrics and traces to Application Insights through the Azure Monitor OpenTelemetry distro
  // (shared/adapters/telemetry.py; docs/operations.md "Telemetry").
  VNB_TELEMETRY: 'azuremonitor'
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-vnb-${resourceToken}'
    location: location
    tags: tags
    serviceName: 'processor'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    appSettings: appSettings
    apiClientId: apiClientId
    apiAllowedApplications: apiAllowedApplications
    apiAllowedPrincipals: apiAllowedPrincipals
    apiAllowedGroups: apiAllowedGroups
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module clusterRbac 'app/cluster-rbac.bicep' = {
  name: 'cluster-rbac'
  scope: clusterRg
  params: {
    principalId: identity.outputs.principalId
  }
}

// Outputs azd stores in .azure/<env>/.env (AZURE_RESOURCE_GROUP tells azd where the service is).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CLUSTER_RESOURCE_GROUP string = clusterRg.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output SERVICE_PROCESSOR_NAME string = api.outputs.name
output AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_QUEUE_SERVICE_URI string = storage.outputs.queueEndpoint
output VNB_REQUESTS_QUEUE string = requestsQueueName
output VNB_EVENTS_QUEUE string = eventsQueueName
output VNB_FOLLOWUP_QUEUE string = followupQueueName
output VNB_CLUSTER_NAME string = clusterName
