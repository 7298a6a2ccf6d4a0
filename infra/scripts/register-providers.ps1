# azd preprovision hook (Windows): same as register-providers.sh. Registers the resource providers
# the app needs at run time as the deployer, since the app's identity has no subscription-scope role.
$ErrorActionPreference = 'Stop'

if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
  Write-Error "register-providers: the Azure CLI (az) is required: install it, run 'az login', then 'azd provision' again."
  exit 1
}
$subscription = $env:AZURE_SUBSCRIPTION_ID
if (-not $subscription) {
  Write-Error 'AZURE_SUBSCRIPTION_ID is not set: run this through azd (azd provision / azd up)'
  exit 1
}

foreach ($namespace in @('Microsoft.ContainerInstance', 'Microsoft.ContainerService', 'Microsoft.Network')) {
  $state = az provider show --namespace $namespace --subscription $subscription --query registrationState --output tsv
  if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
  if ($state -eq 'Registered') {
    Write-Host "register-providers: $namespace is registered"
    continue
  }
  Write-Host "register-providers: $namespace is '$state'; registering (waits until done, usually 1-3 minutes)"
  az provider register --namespace $namespace --subscription $subscription --wait
  if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
}
