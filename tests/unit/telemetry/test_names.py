"""The instruments the app emits are the ones docs/operations.md "Telemetry" lists (the alerts and
the workbook query them by name), with the documented kind and unit."""

from __future__ import annotations

import re

from shared.telemetry import names
from tests.conftest import REPO


def test_every_instrument_is_documented_with_its_kind_and_unit() -> None:
    text = (REPO / "docs" / "operations.md").read_text()
    section = text.split("## Telemetry", 1)[1].split("\n## ", 1)[0]
    rows = {
        name: (kind.strip(), unit.strip().strip("`"))
        for line in section.splitlines()
        if line.startswith("| `vnb.")
        for cells in [line.split("|")]
        for name in re.findall(r"`(vnb\.[a-z_.]+)`", cells[1])
        for kind, unit in [(cells[2], cells[3])]
    }
    for spec in names.ALL:
        assert spec.name in rows, f"document {spec.name} in docs/operations.md Telemetry"
        assert rows[spec.name] == (spec.kind.value, spec.unit), spec.name
    assert set(rows) == {spec.name for spec in names.ALL}
