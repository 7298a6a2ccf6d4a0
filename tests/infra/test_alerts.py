"""The alert rules in infra/app/alerts.bicep: exactly the alerts docs/operations.md documents,
each querying only metrics (and attributes) the app emits, with its columns where the rule needs
them; notification targets come from the azd environment, the webhook as a secure parameter."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.bicep_model import INFRA, MAIN, REPO, Template, parse
from tests.infra.telemetry_contract import METRICS, contract_problems, metric_names

ALERTS = INFRA / "app" / "alerts.bicep"
OPERATIONS = REPO / "docs" / "operations.md"
_ROW = re.compile(r"^\|\s*`(?P<name>[a-z0-9-]+)`[^|]*\|(?P<rest>.*)\|\s*$")


def rules() -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = Template(ALERTS).variable("alertRules")
    return value


def rule_ids() -> list[str]:
    return [rule["name"] for rule in rules()]


def documented_alerts() -> dict[str, list[str]]:
    """Alert name → the other cells of its row in the table of docs/operations.md "## Alerts"."""
    text = OPERATIONS.read_text()
    section = text.split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    found = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            found[match["name"]] = [cell.strip() for cell in re.split(r"(?<!\\)\|", match["rest"])]
    return found


def test_every_documented_alert_is_deployed_and_every_deployed_one_documented() -> None:
    documented, deployed = set(documented_alerts()), set(rule_ids())
    assert documented, 'docs/operations.md "## Alerts" lists no alert'
    assert documented - deployed == set(), f"documented but not in {ALERTS.relative_to(REPO)}"
    assert deployed - documented == set(), "deployed but not documented in docs/operations.md"


def test_each_documented_alert_says_when_it_fires_what_it_means_and_what_to_do() -> None:
    for name, cells in documented_alerts().items():
        assert len(cells) == 3, f"{name}: {cells}"
        assert all(len(cell) > 20 for cell in cells), f"{name}: {cells}"


def test_the_issue_s_alerts_are_all_there() -> None:
    """Poison queue, dead-lettered, waiting too long, reconcile timer, credential refresh (issue 21)."""
    watched = {name for rule in rules() for name in metric_names(rule["query"])}
    assert watched == {
        "vnb.queue.poison.depth",
        "vnb.requests.finished",
        "vnb.requests.oldest_wait",
        "vnb.reconcile.passes",
        "vnb.credentials.refresh.failures",
    }


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["name"])
def test_query_names_only_contract_metrics(rule: dict[str, Any]) -> None:
    assert contract_problems(rule["query"]) == []


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["name"])
def test_the_columns_the_rule_reads_are_projected_by_its_query(rule: dict[str, Any]) -> None:
    projected = set(re.findall(r"\b([A-Za-z_]+)\s*=(?!=)", rule["query"]))
    if rule["timeAggregation"] == "Count":
        assert rule["measure"] == "", "a Count rule counts rows: no measure column"
    else:
        assert rule["measure"] in projected, f"measure {rule['measure']!r} not in {projected}"
    assert set(rule["dimensions"]) <= projected


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["name"])
def test_rule_shape_follows_the_api(rule: dict[str, Any]) -> None:
    assert rule["timeAggregation"] in {"Count", "Average", "Minimum", "Maximum", "Total"}
    assert rule["operator"] in {"Equals", "GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual"}
    assert 0 <= rule["severity"] <= 4
    assert 1 <= rule["failing"] <= rule["periods"]


def test_the_reconcile_alert_fires_on_silence() -> None:
    """No pass at all must fire it: a Count of rows below 1 (no rows counts as 0)."""
    [rule] = [r for r in rules() if r["name"] == "vnb-reconcile-stopped"]
    assert (rule["timeAggregation"], rule["operator"], rule["threshold"]) == ("Count", "LessThan", 1)


def test_every_rule_watches_the_application_insights_component() -> None:
    resource = parse(ALERTS)["resources"]["rules"]["config"]
    assert resource["loop_type"]["detail"] == {"item_name": "rule", "array_name": "alertRules"}
    properties = resource["config"]["properties"]
    assert properties["scopes"] == [
        {"operator": {"type": "property_accessor", "operands": {"operand_1": "applicationInsights", "operand_2": "id"}}}
    ]
    assert properties["enabled"] is True


def test_main_deploys_the_alerts_and_the_workbook_on_the_app_s_component() -> None:
    modules = Template(MAIN).modules
    the_component = modules["rbac"]["config"]["params"]["applicationInsightsName"]  # monitoring.outputs.…
    for name in ("alerts", "workbook"):
        assert modules[name]["config"]["params"]["applicationInsightsName"] == the_component
        assert modules[name]["config"]["scope"] == modules["monitoring"]["config"]["scope"]


def test_notification_targets_come_from_the_azd_environment_and_the_webhook_is_secure() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["alertEmail"]["value"] == "${VNB_ALERT_EMAIL}"
    assert parameters["alertWebhookUrl"]["value"] == "${VNB_ALERT_WEBHOOK_URL}"
    for template in (Template(MAIN), Template(ALERTS)):
        decorators = template.params["alertWebhookUrl"]["decorators"]
        assert any(d.get("type") == "secure" for d in decorators), f"{template.path.name}: webhook URL not @secure()"
        assert template.params["alertEmail"]["default"] == ""


def test_contract_metrics_are_well_formed() -> None:
    assert all(re.fullmatch(r"vnb\.[a-z_]+(\.[a-z_]+)*", name) for name in METRICS)
