"""Every Bicep file parses (pycep; the bicep CLI is not available to the tests) and is sane."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.bicep_model import INFRA, MAIN, REPO, all_resources, bicep_files, parse

EXPECTED = {
    "main.bicep",
    "app/alerts.bicep",
    "app/api.bicep",
    "app/cluster-rbac.bicep",
    "app/identity.bicep",
    "app/monitoring.bicep",
    "app/rbac.bicep",
    "app/storage.bicep",
    "app/workbook.bicep",
}


def test_the_expected_files_exist() -> None:
    found = {path.relative_to(INFRA).as_posix() for path in bicep_files()}
    assert found >= EXPECTED, f"missing Bicep files under infra/: {sorted(EXPECTED - found)}"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_parses(path: Path) -> None:
    try:
        parse(path)
    except Exception as e:
        pytest.fail(f"{path.relative_to(REPO)} does not parse with pycep: {e}")


def test_main_deploys_at_subscription_scope() -> None:
    assert parse(MAIN)["globals"]["scope"]["value"] == "subscription"


def test_every_local_module_path_exists() -> None:
    for path in bicep_files():
        for name, module in (parse(path).get("modules") or {}).items():
            target = path.parent / module["detail"]["path"]
            assert target.is_file(), f"{path.relative_to(REPO)}: module {name} points at missing {target}"


def test_no_preview_api_versions() -> None:
    preview = [
        f"{path.relative_to(REPO)}: {name} {resource['type']}@{resource['api_version']}"
        for path, name, resource in all_resources()
        if "preview" in resource["api_version"]
    ]
    assert not preview, f"use GA API versions: {preview}"
