"""The Function App's app settings as infra/ deploys them, resolved as far as the Bicep allows."""

from __future__ import annotations

from typing import Any

from tests.infra.bicep_model import API, MAIN, Template, Unresolved

# Settings the Bicep sets that are not fields of shared.config.settings.Settings, each read by the
# Functions host, the Azure SDK or the platform (documented there, not in the app).
HOST_SETTINGS: dict[str, str] = {
    "AzureWebJobsStorage__credential": "host: identity-based AzureWebJobsStorage (managedidentity)",
    "AzureWebJobsStorage__blobServiceUri": "host: leases, keys, timer schedule state",
    "AzureWebJobsStorage__tableServiceUri": "host: diagnostic events (AZFD0003 without it)",
    "AZURE_CLIENT_ID": "azure-identity: DefaultAzureCredential picks the user-assigned identity",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "host: where telemetry goes (no secret: local auth is off)",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "host: Entra ID ingestion with the identity",
    "PYTHON_THREADPOOL_THREAD_COUNT": "azure-functions-runtime: worker threads for sync functions (= host.json batchSize)",
    "PYTHON_ENABLE_OPENTELEMETRY": "azure-functions-runtime: OpenTelemetry support (host.json telemetryMode OpenTelemetry)",
}

# Realistic stand-ins for values only known at deploy time, so Settings can validate the rest.
DEPLOY_TIME: dict[str, str] = {
    "VNB_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000",
    "VNB_RESOURCE_GROUP": "rg-dev-aks",
    "VNB_LOCATION": "westus",
    "VNB_APP_PRINCIPAL_ID": "11111111-1111-1111-1111-111111111111",
    "AzureWebJobsStorage__clientId": "22222222-2222-2222-2222-222222222222",
    "AZURE_CLIENT_ID": "22222222-2222-2222-2222-222222222222",
    "AzureWebJobsStorage__blobServiceUri": "https://stvnbexample.blob.core.windows.net/",
    "AzureWebJobsStorage__queueServiceUri": "https://stvnbexample.queue.core.windows.net/",
    "AzureWebJobsStorage__tableServiceUri": "https://stvnbexample.table.core.windows.net/",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD;ClientId=22222222-2222-2222-2222-222222222222",
    "VNB_ACR_REGISTRIES": "contosobatch.azurecr.io",
    "VNB_KEY_VAULT_URL": "https://kv-vnb-example.vault.azure.net/",
    "VNB_DATA_ACCOUNT_URL": "https://stvnbdataexample.blob.core.windows.net/",
    "VNB_DATA_CONTAINERS": "inputs,results",
}


def main_template() -> Template:
    return Template(MAIN)


def api_template() -> Template:
    return Template(API)


def raw_app_settings() -> dict[str, Any]:
    """Setting name -> pycep value (unresolved), from main.bicep's appSettings and api.bicep's
    hostSettings, the two objects the Function App's siteConfig.appSettings is built from."""
    main, api = main_template(), api_template()
    return {**main.variable("appSettings"), **api.variable("hostSettings")}


def resolved_app_settings() -> dict[str, Any]:
    """Setting name -> literal value, or ``Unresolved`` for deploy-time values."""
    main, api = main_template(), api_template()
    return {
        **main.resolve(main.variable("appSettings")),
        **api.resolve(api.variable("hostSettings")),
    }


def app_settings_env() -> dict[str, str]:
    """The settings as the app would see them, with DEPLOY_TIME stand-ins for Azure's values."""
    env: dict[str, str] = {}
    for name, value in resolved_app_settings().items():
        if isinstance(value, Unresolved):
            assert name in DEPLOY_TIME, (
                f"{name} is computed at deploy time; add a realistic stand-in to DEPLOY_TIME in tests/infra/app_settings.py"
            )
            env[name] = DEPLOY_TIME[name]
        else:
            env[name] = str(value)
    return env
