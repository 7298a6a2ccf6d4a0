// Log search alert rules on the app's own OpenTelemetry metrics (docs/operations.md "Alerts" says
// what each one means and what to do), and an optional action group that mails or calls a webhook.
//
// The app exports its metrics with the Azure Monitor OpenTelemetry exporter; each data point lands
// in the component's `customMetrics` table with `name` = the instrument name, the attributes in
// `customDimensions`, counters and histograms as deltas per export interval (`valueSum`,
// `valueCount`), gauges as their last value (`value`) (azure-sdk-for-python
// sdk/monitor/azure-monitor-opentelemetry-exporter/.../export/metrics/_exporter.py
// APPLICATION_INSIGHTS_METRIC_TEMPORALITIES and _convert_point_to_envelope). No platform metric
// fits: Storage's QueueMessageCount is hourly and per account, not per queue
// (https://learn.microsoft.com/azure/storage/queues/monitor-queue-storage-reference).
//
// Rule shape: Microsoft.Insights/scheduledQueryRules@2023-12-01 (azure-rest-api-specs
// specification/monitor/resource-manager/Microsoft.Insights/stable/2023-12-01/scheduledQueryRule_API.json):
// the query returns rows, the service aggregates `metricMeasureColumn` with `timeAggregation`
// (`Count` counts rows) per `windowSize`, splits by `dimensions`, and fires when
// `minFailingPeriodsToAlert` of the last `numberOfEvaluationPeriods` windows break the threshold
// (https://learn.microsoft.com/azure/azure-monitor/alerts/alerts-create-log-alert-rule). A query
// that returns no rows counts as 0, which is how "the reconcile timer stopped" is caught.
param applicationInsightsName string
param location string
param tags object = {}

@description('Address that receives alert mails; empty: no mail.')
param alertEmail string = ''

@secure()
@description('HTTPS webhook called with the common alert schema when an alert fires; empty: none. Secure: such URLs often carry a token.')
param alertWebhookUrl string = ''

@minValue(5)
@description('Alert when a request has waited longer than this many minutes (vnb.requests.oldest_wait).')
param waitingAlertMinutes int = 60

@minValue(5)
@description('Alert when no reconcile pass was counted for this many minutes (vnb.reconcile.passes); the timer runs every 30 s.')
param reconcileSilenceMinutes int = 15

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

var notify = !empty(alertEmail) || !empty(alertWebhookUrl)

// Action groups are global resources (azure-rest-api-specs .../stable/2023-01-01/actionGroups_API.json;
// groupShortName: at most 12 characters, shown in mails and SMS).
resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (notify) {
  name: 'ag-${applicationInsightsName}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'vnode-batch'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
    webhookReceivers: empty(alertWebhookUrl) ? [] : [
      {
        name: 'webhook'
        serviceUri: alertWebhookUrl
        useCommonAlertSchema: true
      }
    ]
  }
}

// One entry per alert; docs/operations.md "Alerts" has a row for each `name` (tests/infra/test_alerts.py).
var alertRules = [
  {
    name: 'vnb-poison-queue'
    displayName: 'vnode-batch: messages stay in the poison queue'
    description: 'The requests poison queue was not empty in two 5-minute windows in a row. The deadletter function empties it within seconds, so a message that stays means it is failing (docs/operations.md "Alerts").'
    severity: 1
    query: '''
customMetrics
| where name == "vnb.queue.poison.depth"
| project timestamp, depth = value, queue = tostring(customDimensions["messaging.destination.name"])
'''
    timeAggregation: 'Maximum'
    measure: 'depth'
    dimensions: ['queue']
    operator: 'GreaterThan'
    threshold: 0
    windowSize: 'PT5M'
    periods: 2
    failing: 2
  }
  {
    name: 'vnb-deadlettered'
    displayName: 'vnode-batch: requests were dead-lettered'
    description: 'At least one request ended as request.deadlettered (poisoned, or the cluster never became ready) in the last 5 minutes.'
    severity: 2
    query: '''
customMetrics
| where name == "vnb.requests.finished"
| where tostring(customDimensions["vnb.outcome"]) == "deadlettered"
| project timestamp, requests = valueSum, reason = tostring(customDimensions["vnb.reason"]), team = tostring(customDimensions["vnb.team"])
'''
    timeAggregation: 'Total'
    measure: 'requests'
    dimensions: ['reason', 'team']
    operator: 'GreaterThan'
    threshold: 0
    windowSize: 'PT5M'
    periods: 1
    failing: 1
  }
  {
    name: 'vnb-waiting-too-long'
    displayName: 'vnode-batch: a request has waited too long'
    description: 'The oldest waiting request (waiting for the cluster or for ACI capacity) has waited longer than ${waitingAlertMinutes} minutes.'
    severity: 2
    query: '''
customMetrics
| where name == "vnb.requests.oldest_wait"
| project timestamp, oldestWaitSeconds = value, team = tostring(customDimensions["vnb.team"])
'''
    timeAggregation: 'Maximum'
    measure: 'oldestWaitSeconds'
    dimensions: ['team']
    operator: 'GreaterThan'
    threshold: waitingAlertMinutes * 60
    windowSize: 'PT15M'
    periods: 1
    failing: 1
  }
  {
    name: 'vnb-reconcile-stopped'
    displayName: 'vnode-batch: the reconcile timer is not running'
    description: 'No reconcile pass was counted for ${reconcileSilenceMinutes} minutes: outcomes are not reported, waiting requests are not admitted.'
    severity: 1
    query: '''
customMetrics
| where name == "vnb.reconcile.passes"
| project timestamp, passes = valueSum
'''
    timeAggregation: 'Count'
    measure: ''
    dimensions: []
    operator: 'LessThan'
    threshold: 1
    windowSize: 'PT${reconcileSilenceMinutes}M'
    periods: 1
    failing: 1
  }
  {
    name: 'vnb-credential-refresh-failing'
    displayName: 'vnode-batch: ACR or Key Vault credential refresh is failing'
    description: 'Refreshing the registry pull secret (acr) or reading Key Vault secrets (keyvault) failed in at least two of the last three 5-minute windows.'
    severity: 2
    query: '''
customMetrics
| where name == "vnb.credentials.refresh.failures"
| project timestamp, failures = valueSum, credential = tostring(customDimensions["vnb.credential"])
'''
    timeAggregation: 'Total'
    measure: 'failures'
    dimensions: ['credential']
    operator: 'GreaterThan'
    threshold: 0
    windowSize: 'PT5M'
    periods: 3
    failing: 2
  }
]

resource rules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in alertRules: {
  name: rule.name
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: rule.windowSize
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: rule.timeAggregation
          metricMeasureColumn: empty(rule.measure) ? null : rule.measure
          dimensions: [for dimension in rule.dimensions: {
            name: dimension
            operator: 'Include'
            values: [
              '*'
            ]
          }]
          operator: rule.operator
          threshold: rule.threshold
          failingPeriods: {
            numberOfEvaluationPeriods: rule.periods
            minFailingPeriodsToAlert: rule.failing
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: notify ? [actionGroup!.id] : []
    }
  }
}]

output alertRuleNames array = [for rule in alertRules: rule.name]
