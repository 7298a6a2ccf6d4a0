// The operators' Azure Monitor workbook over the app's OpenTelemetry metrics: requests and outcomes
// by reason and team, waiting by reason, latencies, ACI capacity against its limits, cost by team,
// the poison queue and the reconcile timer. The workbook itself is workbook.json (edit it in the
// portal's Advanced Editor and paste it back); its queries may name only the metrics the app emits
// (tests/infra/test_workbook.py).
//
// Resource shape: Microsoft.Insights/workbooks@2023-06-01 (azure-rest-api-specs
// specification/applicationinsights/resource-manager/Microsoft.Insights/stable/2023-06-01/workbooks_API.json):
// the name is a GUID, kind 'shared' makes it visible to everyone with read access on the resource
// group, and sourceId files it under the Application Insights component's Workbooks
// (https://learn.microsoft.com/azure/azure-monitor/visualize/workbooks-automate).
param applicationInsightsName string
param location string
param tags object = {}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(applicationInsights.id, 'vnode-batch-operations')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'vnode-batch operations'
    category: 'workbook'
    sourceId: applicationInsights.id
    version: 'Notebook/1.0'
    // fallbackResourceIds: the resource the queries run against when the workbook is opened outside
    // the component (from the Workbooks gallery of Azure Monitor).
    serializedData: replace(loadTextContent('workbook.json'), '__APPLICATION_INSIGHTS_ID__', applicationInsights.id)
  }
}

output workbookId string = workbook.id
