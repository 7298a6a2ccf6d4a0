// The Function App on a Flex Consumption (FC1) plan, Python 3.13, running as the user-assigned
// identity. On Flex the runtime is declared in functionAppConfig.runtime: FUNCTIONS_WORKER_RUNTIME
// (and FUNCTIONS_EXTENSION_VERSION) must NOT be app settings, the platform rejects them.
param name string
param planName string
param location string
param tags object = {}

@description('azd service name in azure.yaml; azd finds the app by the azd-service-name tag.')
param serviceName string

param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param maximumInstanceCount int = 100
param instanceMemoryMB int = 2048

@description('Application (client) id of the Entra ID app registration callers request tokens for (App Service authentication in front of /api/*); create it once with `az ad app create` (docs/deploy.md).')
param apiClientId string

@description('Client application ids allowed to call the API (Easy Auth defaultAuthorizationPolicy.allowedApplications).')
param apiAllowedApplications array = []

@description('User and service principal object ids allowed to call the API (allowedPrincipals.identities).')
param apiAllowedPrincipals array = []

@description('Group object ids whose members may call the API (allowedPrincipals.groups).')
param apiAllowedGroups array = []

// Without a policy any principal of the tenant with a token for apiClientId passes Easy Auth; with
// one, only those listed (Microsoft docs "Configure Microsoft Entra authentication", "Use a
// built-in authorization policy"). Which requests each one then sees is the teams file's call.
var openToTenant = empty(apiAllowedApplications) && empty(apiAllowedPrincipals) && empty(apiAllowedGroups)
var policy = {
  defaultAuthorizationPolicy: {
    allowedApplications: apiAllowedApplications
    allowedPrincipals: {
      identities: apiAllowedPrincipals
      groups: apiAllowedGroups
    }
  }
}
var audiences = {
  allowedAudiences: [
    'api://${apiClientId}'
    apiClientId
  ]
}
var validation = openToTenant ? audiences : union(audiences, policy)

@description('The VNB_* settings built in main.bicep.')
param appSettings object

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Identity-based connections only. The host needs the blob service (leases that keep the timers
// singletons, host keys, Flex deployment), the queue service (triggers and outputs) and the table
// service (the host writes its diagnostic events there, AZFD0003 otherwise). APPLICATIONINSIGHTS_
// CONNECTION_STRING carries no secret here: the component has local auth disabled, so it only
// names the ingestion endpoint and ingestion takes an Entra ID token for the identity below.
var hostSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identityClientId}'
  // The queue functions wait on Kubernetes/Storage I/O: as many worker threads as the host's
  // batchSize (host.json) keep a batch in flight (azure-functions-runtime utils/threadpool.py
  // _get_max_workers; default min(32, vCPUs + 4) = 6 on a 2-vCPU instance). docs/performance.md.
  PYTHON_THREADPOOL_THREAD_COUNT: '16'
  // With host.json "telemetryMode": "OpenTelemetry": the worker takes part in the host's
  // OpenTelemetry traces ("Use OpenTelemetry with Azure Functions", Python: this setting and
  // configure_azure_monitor() in the app; azure-functions-runtime handle_event reads it at init).
  PYTHON_ENABLE_OPENTELEMETRY: 'true'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  //checkov:skip=CKV_AZURE_225: Zone-redundant Flex Consumption keeps at least two always-ready instances per function group, billed while idle, and is offered only in some regions; this app must cost ~0 when idle, and a lost instance only delays queue messages, which the host retries.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_222: azd deploy publishes through the app's SCM endpoint, and the requests API (/api/requests) is called by producers and the CLI from outside, so the app needs public network access unless it gets VNet integration and a private endpoint (an opt-in hardening, see docs/deploy.md); every /api route needs an Entra ID bearer token (authsettingsV2 below) and a function key, and basic publishing credentials are disabled below.
  //checkov:skip=CKV_AZURE_17: Callers of the requests API authenticate with Entra ID bearer tokens (App Service authentication, authsettingsV2 below) plus function keys; client certificates would add a second PKI to manage for no extra assurance.
  //checkov:skip=CKV_AZURE_212: Minimum (always-ready) instances are billed while idle; queue and timer triggers tolerate a cold start, and the app is meant to cost ~0 when no work arrives.
  //checkov:skip=CKV_AZURE_213: Health check probes an HTTP path anonymously, and every route of this app requires authentication; its liveness shows in Application Insights and in the events queue (every request ends in exactly one event).
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // siteConfig.appSettings replaces the app's whole settings list on every deployment, so a
      // setting changed by hand in the portal is reset by the next `azd provision`.
      appSettings: [
        for setting in items(union(appSettings, hostSettings)): {
          name: setting.key
          value: setting.value
        }
      ]
    }
  }
}

// App Service authentication (Easy Auth) in front of the requests API: a caller without a valid
// Entra ID token for apiClientId gets 401 before the function (and its key check) runs; no login
// redirects (an API, not a web site), no token store. Schema:
// https://learn.microsoft.com/azure/templates/microsoft.web/sites/config-authsettingsv2
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13: This IS App Service authentication, in the authsettingsV2 shape (platform.enabled); checkov's AppServiceAuthentication (checkov/arm/checks/resource/AppServiceAuthentication.py) reads only the v1 authsettings shape (properties.enabled).
  //checkov:skip=CKV_AZURE_63: A site-configuration check (siteConfig.httpLoggingEnabled) that checkov applies to every sites/config resource; this one holds authentication settings only.
  //checkov:skip=CKV_AZURE_65: A site-configuration check (detailedErrorLoggingEnabled) applied to every sites/config resource; this one holds authentication settings only.
  //checkov:skip=CKV_AZURE_66: A site-configuration check (requestTracingEnabled) applied to every sites/config resource; this one holds authentication settings only.
  //checkov:skip=CKV_AZURE_80: A .NET Framework version check applied to every sites/config resource; this is a Python app and this resource holds authentication settings only.
  //checkov:skip=CKV_AZURE_88: An Azure Files mount check applied to every sites/config resource; this resource holds authentication settings only (the app keeps no files).
  //checkov:skip=CKV_AZURE_222: Public network access is a property of the site (justified on functionApp above), not of this authentication settings resource.
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: apiClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: validation
        login: {
          disableWWWAuthenticate: false
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

// azd deploys with an Entra ID token; nothing needs the legacy publishing user/password.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output id string = functionApp.id
