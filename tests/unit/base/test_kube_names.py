"""The API server's name rules, and no regex in the app that a final newline slips through."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shared.base import kube_names
from tests.conftest import REPO


@pytest.mark.parametrize("value", ["a", "a-b", "0", "a" * 63])
def test_valid_labels_and_namespaces(value: str) -> None:
    assert kube_names.dns1123_label(value) == []
    assert kube_names.label_key(value) == []
    assert kube_names.label_value(value) == []


@pytest.mark.parametrize("value", ["a\n", "\na", "a\r", "A b", "-a", "a-", "a" * 64])
def test_invalid_names_have_problems(value: str) -> None:
    assert kube_names.dns1123_label(value)
    assert kube_names.label_key(value)
    assert kube_names.label_value(value)


def test_subdomain_and_prefixed_keys() -> None:
    assert kube_names.dns1123_subdomain("a" * 64 + ".example.com") == []  # RE2 pattern has no per-label cap
    assert kube_names.dns1123_subdomain("example.com\n")
    assert kube_names.label_key("example.com/Name_1") == []
    assert kube_names.label_key("Example.com/x")
    assert kube_names.label_value("") == []


def _dollar_anchored_patterns() -> list[str]:
    """re.compile/match/search/fullmatch calls whose literal pattern ends in `$`."""
    found = []
    for root in ("shared", "functions", "devtools"):
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "re"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                    and node.args[0].value.endswith("$")
                    and not node.args[0].value.endswith("\\$")
                ):
                    found.append(f"{Path(path).relative_to(REPO)}:{node.lineno}")
    return found


def test_no_regex_ends_in_a_dollar_that_passes_a_final_newline() -> None:
    # Python's `$` also matches before a final "\n"; write the pattern without anchors and use
    # fullmatch (as Go's RE2 `^...$` in kube-apiserver and ARM's validators mean).
    assert _dollar_anchored_patterns() == []
