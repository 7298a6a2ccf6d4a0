"""The operators' workbook (infra/app/workbook.json, deployed by infra/app/workbook.bicep): valid
workbook JSON whose queries name only metrics the app emits, with the charts issue 21 asks for."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.bicep_model import INFRA, parse
from tests.infra.telemetry_contract import contract_problems, metric_names

WORKBOOK = INFRA / "app" / "workbook.json"
BICEP = INFRA / "app" / "workbook.bicep"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}")


def workbook() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(WORKBOOK.read_text())
    return value


def queries() -> list[dict[str, Any]]:
    """The content of every query item (type 3, KqlItem), nested groups included."""
    found = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            if item.get("type") == 3:
                found.append(item["content"])
            walk(item.get("content", {}).get("items", []))

    walk(workbook()["items"])
    return found


def parameters() -> set[str]:
    return {
        parameter["name"]
        for item in workbook()["items"]
        if item.get("type") == 9
        for parameter in item["content"]["parameters"]
    }


def test_is_a_workbook_document() -> None:
    document = workbook()
    assert document["version"] == "Notebook/1.0"
    names = [item["name"] for item in document["items"]]
    assert len(names) == len(set(names)), "item names must be unique (the portal keys state by them)"
    assert len(queries()) >= 10


def test_the_bicep_fills_in_the_component_the_queries_run_against() -> None:
    [fallback] = workbook()["fallbackResourceIds"]
    serialized = parse(BICEP)["resources"]["workbook"]["config"]["properties"]["serializedData"]
    replace = serialized["function"]
    assert replace["type"] == "replace"
    arguments = replace["parameters"]
    assert arguments["original_string"]["function"]["parameters"]["file_path"] == WORKBOOK.name
    assert arguments["old_string"] == fallback, "the placeholder the Bicep replaces is not in workbook.json"
    assert arguments["new_string"]["operator"]["operands"] == {"operand_1": "applicationInsights", "operand_2": "id"}


@pytest.mark.parametrize("content", queries(), ids=lambda content: content["title"])
def test_query_names_only_contract_metrics(content: dict[str, Any]) -> None:
    assert contract_problems(content["query"]) == []


@pytest.mark.parametrize("content", queries(), ids=lambda content: content["title"])
def test_query_runs_on_application_insights_in_the_chosen_time_range(content: dict[str, Any]) -> None:
    assert content["queryType"] == 0
    assert content["resourceType"] == "microsoft.insights/components"
    assert content["timeContextFromParameter"] in parameters()
    used = set(_PLACEHOLDER.findall(content["query"]))
    assert used <= parameters(), f"placeholders of no parameter: {used - parameters()}"


def test_the_charts_an_operator_needs_are_there() -> None:
    """Outcomes by reason/team, waiting by reason, latencies, capacity used vs limit, cost by team,
    poison depth (issue 21 item 3)."""
    shown = {name for content in queries() for name in metric_names(content["query"])}
    assert {
        "vnb.requests.finished",
        "vnb.requests.waiting",
        "vnb.request.create.duration",
        "vnb.request.report.duration",
        "vnb.job.duration",
        "vnb.capacity.cores.used",
        "vnb.capacity.cores.limit",
        "vnb.capacity.groups.used",
        "vnb.capacity.groups.limit",
        "vnb.cost",
        "vnb.queue.poison.depth",
    } <= shown
    by_team = [c["title"] for c in queries() if "team" in c["title"].lower()]
    assert any("Outcomes" in t for t in by_team)
    assert any("Cost" in t for t in by_team)
    assert any("p50" in c["query"] and "p99" in c["query"] for c in queries())


def test_the_contract_check_catches_what_would_stay_silent() -> None:
    assert contract_problems('customMetrics | where name == "vnb.requests.finishd"') == [
        "unknown metric 'vnb.requests.finishd'"
    ]
    assert contract_problems(
        'customMetrics | where name == "vnb.cost" | extend r = tostring(customDimensions["vnb.reason"])'
    ) == ["attribute 'vnb.reason' is on none of ['vnb.cost']"]
    assert contract_problems("traces | where message has 'x'") == [
        "queries 'traces', not customMetrics",
        "selects no metric by name",
    ]
