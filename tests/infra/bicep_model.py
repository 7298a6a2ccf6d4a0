"""Read the Bicep files the way the checks need them: parsed with pycep, values resolved.

pycep turns a Bicep file into JSON-like data. It does not tell an identifier from a string
literal (``name: foo`` and ``name: 'foo'`` both come out as ``"foo"``), so ``resolve`` treats a
string that names a parameter or variable of the same file as a reference to it. The infra files
never use a literal that equals one of their own identifiers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"
API = INFRA / "app" / "api.bicep"
STORAGE = INFRA / "app" / "storage.bicep"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"

_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Unresolved:
    """A value only Azure knows at deploy time (a resource property, a function of one)."""

    expression: Any


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def _parser() -> BicepParser:
    return BicepParser()


@cache
def parse(path: Path) -> dict[str, Any]:
    """The pycep document of one file (raises with pycep's message if it does not parse)."""
    return _parser().parse(text=path.read_text())


class Template:
    """One parsed file with a resolver for its parameters (defaults) and variables."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc = parse(path)
        self.params: dict[str, Any] = self.doc.get("parameters") or {}
        self.variables: dict[str, Any] = self.doc.get("variables") or {}
        self.resources: dict[str, Any] = self.doc.get("resources") or {}
        self.modules: dict[str, Any] = self.doc.get("modules") or {}

    def variable(self, name: str) -> Any:
        return self.variables[name]["value"]

    def resolve(self, value: Any) -> Any:
        """Literals stay, references to params (their default) and vars are followed, string
        interpolations of resolvable parts are filled in; anything else is ``Unresolved``."""
        if isinstance(value, str):
            if value in self.params:
                param = self.params[value]
                return self.resolve(param["default"]) if "default" in param else Unresolved(value)
            if value in self.variables:
                return self.resolve(self.variables[value]["value"])
            return self._interpolate(value)
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if isinstance(value, dict):
            if "function" in value:
                function = value["function"]
                if function.get("type") == "string":
                    inner = self.resolve(next(iter(function["parameters"].values())))
                    return inner if isinstance(inner, Unresolved) else str(inner)
                return Unresolved(value)
            if "operator" in value:
                return Unresolved(value)
            return {key: self.resolve(item) for key, item in value.items()}
        return value

    def _interpolate(self, text: str) -> Any:
        parts = _INTERPOLATION.split(text)
        if len(parts) == 1:
            return text
        out: list[str] = []
        for index, part in enumerate(parts):
            if index % 2 == 0:
                out.append(part)
                continue
            if not _IDENTIFIER.match(part.strip()):
                return Unresolved(text)
            resolved = self.resolve(part.strip())
            if isinstance(resolved, Unresolved) or resolved == part.strip():
                return Unresolved(text)
            out.append(str(resolved))
        return "".join(out)


def all_resources() -> list[tuple[Path, str, dict[str, Any]]]:
    """(file, symbolic name, resource) for every resource declared in infra/."""
    found: list[tuple[Path, str, dict[str, Any]]] = []
    for path in bicep_files():
        for name, resource in (parse(path).get("resources") or {}).items():
            found.append((path, name, resource))
    return found


def unescape(bicep_string: str) -> str:
    """A single-quoted Bicep string's text (pycep keeps the backslash escapes)."""
    return bicep_string.replace("\\'", "'").replace("\\\\", "\\")
