#!/bin/sh
# azd preprovision hook: register the resource providers the app needs at run time, as the
# deployer. The app's identity is deliberately given no subscription-scope role, so it cannot
# register them itself: Microsoft.ContainerInstance (the virtual node runs pods as ACI container
# groups), Microsoft.ContainerService (AKS) and Microsoft.Network (vnet, subnets). The resource
# types the template itself deploys are registered by Resource Manager during the deployment.
set -eu

if ! command -v az >/dev/null 2>&1; then
  echo "register-providers: the Azure CLI (az) is required: install it, run 'az login', then 'azd provision' again." >&2
  exit 1
fi
subscription="${AZURE_SUBSCRIPTION_ID:?AZURE_SUBSCRIPTION_ID is not set: run this through azd (azd provision / azd up)}"

for namespace in Microsoft.ContainerInstance Microsoft.ContainerService Microsoft.Network; do
  state=$(az provider show --namespace "$namespace" --subscription "$subscription" --query registrationState --output tsv)
  if [ "$state" = "Registered" ]; then
    echo "register-providers: $namespace is registered"
    continue
  fi
  echo "register-providers: $namespace is '$state'; registering (waits until done, usually 1-3 minutes)"
  az provider register --namespace "$namespace" --subscription "$subscription" --wait
done
