"""The metric names and attributes the app emits, from its own registry (``shared.telemetry.names``,
issue 21's contract between the telemetry code and the alerts/workbook): instrument name → the
attributes its data points may carry.

The alert rules and the workbook query Application Insights ``customMetrics`` by these exact names
(``name``) and attribute keys (``customDimensions["…"]``); a query naming anything else would watch
a series that never exists and stay silent.
"""

from __future__ import annotations

import re

from shared.telemetry import names

METRICS: dict[str, frozenset[str]] = {instrument.name: frozenset(instrument.attributes) for instrument in names.ALL}


_EQUALS = re.compile(r'\bname\s*==\s*"([^"]*)"')
_IN = re.compile(r"\bname\s+in\s*\(([^)]*)\)")
_QUOTED = re.compile(r'"([^"]*)"')
_ATTRIBUTE = re.compile(r'customDimensions\s*\[\s*"([^"]*)"\s*\]')
_TABLE = re.compile(r"^\s*([A-Za-z]+)\b")


def metric_names(query: str) -> set[str]:
    """The metric names a KQL query selects with ``name == "…"`` or ``name in ("…", …)``."""
    names = set(_EQUALS.findall(query))
    for listed in _IN.findall(query):
        names.update(_QUOTED.findall(listed))
    return names


def attribute_keys(query: str) -> set[str]:
    """The ``customDimensions["…"]`` keys a KQL query reads."""
    return set(_ATTRIBUTE.findall(query))


def table(query: str) -> str:
    """The table a KQL query starts from."""
    match = _TABLE.match(query)
    return match.group(1) if match else ""


def contract_problems(query: str) -> list[str]:
    """What in ``query`` the contract does not have: an unknown metric, an attribute none of its
    metrics carry, a query of another table or of no metric at all."""
    problems = []
    if table(query) != "customMetrics":
        problems.append(f"queries {table(query)!r}, not customMetrics")
    names = metric_names(query)
    if not names:
        problems.append("selects no metric by name")
    unknown = names - set(METRICS)
    problems += [f"unknown metric {name!r}" for name in sorted(unknown)]
    carried = set().union(*(METRICS[name] for name in names - unknown)) if names - unknown else set()
    problems += [f"attribute {key!r} is on none of {sorted(names)}" for key in sorted(attribute_keys(query) - carried)]
    return problems
