"""The properties the issue pins down: Flex Consumption, identity-only storage, AAD-only telemetry."""

from __future__ import annotations

from typing import Any

from tests.infra.bicep_model import API, INFRA, MAIN, STORAGE, Template


def _resource(template: Template, name: str) -> dict[str, Any]:
    config: dict[str, Any] = template.resources[name]["config"]
    return config


def test_storage_account_is_entra_id_only() -> None:
    storage = Template(STORAGE)
    props = _resource(storage, "storage")["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["defaultToOAuthAuthentication"] is True
    assert _resource(storage, "deploymentContainer")["properties"]["publicAccess"] == "None"


def test_queues_are_created_from_the_queue_names_parameter() -> None:
    storage = Template(STORAGE)
    queues = storage.resources["queues"]
    assert queues["type"] == "Microsoft.Storage/storageAccounts/queueServices/queues"
    loop = queues["config"]["loop_type"]["detail"]
    assert loop["array_name"] == "queueNames"
    assert queues["config"]["config"]["name"] == loop["item_name"]


def test_function_app_is_flex_consumption_python_313_with_the_identity() -> None:
    api = Template(API)
    plan = _resource(api, "plan")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True
    site = _resource(api, "functionApp")
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    props = site["properties"]
    assert props["httpsOnly"] is True
    config = props["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.13"}
    deployment = config["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"


def test_basic_publishing_credentials_are_disabled() -> None:
    api = Template(API)
    policies = {
        resource["config"]["name"]: resource["config"]["properties"]["allow"]
        for resource in api.resources.values()
        if resource["type"] == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    }
    assert policies == {"scm": False, "ftp": False}


def test_telemetry_takes_entra_id_tokens_only() -> None:
    monitoring = Template(INFRA / "app" / "monitoring.bicep")
    assert _resource(monitoring, "applicationInsights")["properties"]["DisableLocalAuth"] is True
    assert _resource(monitoring, "logAnalytics")["properties"]["features"]["disableLocalAuth"] is True


def test_two_resource_groups_and_the_cluster_one_defaults_to_rg_env_aks() -> None:
    main = Template(MAIN)
    groups = [name for name, r in main.resources.items() if r["type"] == "Microsoft.Resources/resourceGroups"]
    assert sorted(groups) == ["clusterRg", "rg"]
    assert "rg-${environmentName}-aks" in str(main.variable("aksResourceGroupName"))
    assert main.params["clusterResourceGroupName"]["default"] == ""
    # The cluster group is created empty: the only things deployed into it are role assignments and the
    # app's steady-state custom role (a role definition is not a resource in the group's contents).
    into_cluster_rg = [name for name, m in main.modules.items() if m["config"].get("scope") == "clusterRg"]
    assert into_cluster_rg == ["clusterRbac"]
    cluster_rbac = Template(INFRA / "app" / "cluster-rbac.bicep")
    assert {r["type"] for r in cluster_rbac.resources.values()} == {
        "Microsoft.Authorization/roleAssignments",
        "Microsoft.Authorization/roleDefinitions",
    }


def test_outputs_for_azd() -> None:
    outputs = Template(MAIN).doc["outputs"]
    for name in (
        "AZURE_FUNCTION_NAME",
        "AZURE_RESOURCE_GROUP",
        "AZURE_CLUSTER_RESOURCE_GROUP",
        "AZURE_STORAGE_QUEUE_SERVICE_URI",
        "AZURE_LOCATION",
    ):
        assert name in outputs, f"main.bicep should output {name} for azd"


def test_the_requests_api_sits_behind_entra_id_authentication() -> None:
    """authsettingsV2: every unauthenticated /api call is answered 401 (no login redirect), bearer
    tokens for the API's app registration are accepted, nothing is kept in a token store."""
    api = Template(API)
    auth = _resource(api, "auth")
    assert auth["name"] == "authsettingsV2"
    props = auth["properties"]
    assert props["platform"]["enabled"] is True
    assert props["globalValidation"] == {"requireAuthentication": True, "unauthenticatedClientAction": "Return401"}
    assert props["httpSettings"]["requireHttps"] is True
    aad = props["identityProviders"]["azureActiveDirectory"]
    assert aad["enabled"] is True
    assert aad["registration"]["clientId"] == "apiClientId"
    assert len(aad["validation"]["allowedAudiences"]) == 2
    assert props["login"]["tokenStore"]["enabled"] is False
    params = Template(MAIN).modules["api"]["config"]["params"]
    assert params["apiClientId"] == "apiClientId"
