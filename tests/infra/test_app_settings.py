"""The app settings deployed by infra/ agree with shared.config.settings.Settings, in both directions."""

from __future__ import annotations

import re

from shared.config.settings import Settings
from tests.infra.app_settings import (
    HOST_SETTINGS,
    api_template,
    app_settings_env,
    main_template,
    raw_app_settings,
    resolved_app_settings,
)
from tests.infra.bicep_model import REPO, bicep_files

ALIASES = {field.alias for field in Settings.model_fields.values() if field.alias}
REQUIRED = {field.alias for field in Settings.model_fields.values() if field.alias and field.is_required()}


def test_the_function_app_gets_exactly_the_two_setting_objects() -> None:
    site = api_template().resources["functionApp"]["config"]["properties"]["siteConfig"]
    loop = site["appSettings"]["loop_type"]["detail"]["array_name"]["function"]
    assert loop["type"] == "items"
    union = loop["parameters"]["arg_1"]["function"]
    assert union["type"] == "union"
    assert list(union["parameters"].values()) == ["appSettings", "hostSettings"]
    assert main_template().modules["api"]["config"]["params"]["appSettings"] == "appSettings"
    assert not any(
        resource["type"] == "Microsoft.Web/sites/config" and resource["config"]["name"] != "authsettingsV2"
        for resource in api_template().resources.values()
    ), "settings are set in siteConfig.appSettings only; a sites/config 'appsettings' resource would replace them"


def test_no_unknown_setting() -> None:
    unknown = sorted(
        name
        for name in raw_app_settings()
        if name.startswith(("VNB_", "AzureWebJobsStorage")) and name not in ALIASES and name not in HOST_SETTINGS
    )
    assert not unknown, f"set in infra/ but neither a Settings alias nor a documented host setting: {unknown}"
    other = sorted(name for name in raw_app_settings() if name not in ALIASES and name not in HOST_SETTINGS)
    assert not other, f"undocumented settings in infra/ (add to HOST_SETTINGS with the reason): {other}"


def test_no_required_setting_missing() -> None:
    missing = sorted(REQUIRED - set(raw_app_settings()))
    assert not missing, f"required by shared.config.settings.Settings but not set in infra/: {missing}"


def test_the_deployed_settings_validate_in_aks_mode() -> None:
    settings = Settings.from_env(app_settings_env())
    assert settings.cluster_mode == "aks"
    assert settings.storage_connection is None, "no connection string: the identity form only"
    assert settings.storage_queue_uri
    assert settings.storage_client_id
    assert settings.subscription_id
    assert settings.resource_group
    assert settings.app_principal_id


def test_every_aks_mode_requirement_is_set() -> None:
    """The settings whose absence breaks aks mode are exactly ones the Bicep sets: removing any
    of them makes Settings fail, and the required fields are among them."""
    env = app_settings_env()
    needed = set()
    for name in env:
        reduced = {key: value for key, value in env.items() if key != name}
        try:
            Settings.from_env(reduced)
        except ValueError:
            needed.add(name)
    assert {
        "VNB_SUBSCRIPTION_ID",
        "VNB_RESOURCE_GROUP",
        "VNB_APP_PRINCIPAL_ID",
        "AzureWebJobsStorage__queueServiceUri",
    } <= needed
    assert needed >= REQUIRED


def test_identity_settings_point_at_the_user_assigned_identity() -> None:
    raw = raw_app_settings()
    assert raw["AzureWebJobsStorage__credential"] == "managedidentity"
    assert raw["AzureWebJobsStorage__clientId"] == raw["AZURE_CLIENT_ID"] == "identityClientId"
    assert raw["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD;ClientId=${identityClientId}"
    principal = raw["VNB_APP_PRINCIPAL_ID"]["operator"]["operands"]
    assert principal["operand_1"] == "identity"
    assert principal["operand_2"]["operator"]["operands"] == {"operand_1": "outputs", "operand_2": "principalId"}
    api_params = main_template().modules["api"]["config"]["params"]
    client_id = api_params["identityClientId"]["operator"]["operands"]
    assert client_id["operand_1"] == "identity"


def test_cluster_settings_name_the_cluster_resource_group() -> None:
    raw = raw_app_settings()
    assert raw["VNB_RESOURCE_GROUP"]["operator"]["operands"] == {"operand_1": "clusterRg", "operand_2": "name"}
    assert resolved_app_settings()["VNB_CLUSTER_MODE"] == "aks"


def test_network_defaults_are_the_settings_defaults() -> None:
    """The Bicep exposes the network as parameters whose defaults are the seed's (= Settings')."""
    resolved = resolved_app_settings()
    for name, field in Settings.model_fields.items():
        alias = field.alias
        if alias in resolved and alias.endswith(("_CIDR", "_IP", "_VM_SIZE", "_CLUSTER_NAME")):
            assert resolved[alias] == field.default, f"{alias}: Bicep default {resolved[alias]!r} != Settings {name}"


def test_no_forbidden_settings() -> None:
    raw = raw_app_settings()
    # Flex Consumption takes the runtime from functionAppConfig and rejects these settings.
    assert "FUNCTIONS_WORKER_RUNTIME" not in raw
    assert "FUNCTIONS_EXTENSION_VERSION" not in raw
    # A bare AzureWebJobsStorage is a connection string (with a key): identity settings only.
    assert "AzureWebJobsStorage" not in raw
    assert "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING" not in raw


SECRET_PATTERNS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"listKeys\s*\(",
        r"listConnectionStrings\s*\(",
        r"listAccountSas\s*\(",
        r"listServiceSas\s*\(",
        r"AccountKey\s*=",
        r"SharedAccessSignature",
        r"InstrumentationKey\s*=",
        r"StorageAccountConnectionString",
    )
]


def test_no_keys_or_connection_strings_anywhere() -> None:
    hits = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in bicep_files()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if not line.strip().startswith("//") and any(p.search(line) for p in SECRET_PATTERNS)
    ]
    assert not hits, f"secrets or key-based auth in infra/: {hits}"
