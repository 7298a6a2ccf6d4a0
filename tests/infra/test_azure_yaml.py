"""azure.yaml and main.parameters.json fit infra/main.bicep."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.infra.bicep_model import INFRA, MAIN, REPO, Template


def azure_yaml() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "azure.yaml").read_text())
    return document


def test_one_python_function_service_matching_the_bicep_tag() -> None:
    services = azure_yaml()["services"]
    assert list(services) == ["processor"]
    service = services["processor"]
    assert service == {"project": ".", "language": "python", "host": "function"}
    api = Template(MAIN).modules["api"]["config"]["params"]
    assert api["serviceName"] == "processor", "the azd-service-name tag must match the azure.yaml service"
    assert "SERVICE_PROCESSOR_NAME" in Template(MAIN).doc["outputs"]


def test_infra_points_at_main_bicep() -> None:
    assert azure_yaml()["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}


def test_preprovision_registers_the_container_instance_provider() -> None:
    hooks = azure_yaml()["hooks"]["preprovision"]
    for platform in ("posix", "windows"):
        hook = hooks[platform]
        assert hook["continueOnError"] is False
        script = REPO / hook["run"]
        assert script.is_file(), f"{platform} hook {hook['run']} is missing"
        text = script.read_text()
        for namespace in ("Microsoft.ContainerInstance", "Microsoft.ContainerService", "Microsoft.Network"):
            assert namespace in text, f"{script.name} does not register {namespace}"


def test_parameters_file_feeds_existing_parameters_and_every_required_one() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = Template(MAIN).params
    assert set(parameters) <= set(declared), f"unknown parameters: {set(parameters) - set(declared)}"
    required = {name for name, param in declared.items() if "default" not in param}
    assert required <= set(parameters), f"required parameters azd would prompt for: {required - set(parameters)}"
    for name, value in parameters.items():
        assert re.fullmatch(r"\$\{[A-Z_]+\}", value["value"]), f"{name}: pass an azd environment variable"
