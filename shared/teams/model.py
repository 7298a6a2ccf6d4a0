"""The teams file (VNB_TEAMS_FILE): which teams share this app, and what each may do (pure).

Declared by the platform team, versioned with the app like ``schedules.json`` and validated at
startup (an error names the entry: ``teams[2].nominal.cores``). For each team:

* ``members``: who belongs to it, as Easy Auth presents a caller (App Service authentication,
  ``X-MS-CLIENT-PRINCIPAL``: learn.microsoft.com/azure/app-service/configure-authentication-user-identities):
  ``principals`` (Entra object ids, the ``oid`` claim), ``applications`` (app ids, ``appid``/``azp``),
  ``groups`` (``groups`` claim object ids); and ``functionKeys``: SHA-256 hex digests of function
  keys for local and dev use (the file is versioned: it never holds a key itself);
* ``nominal``: its guaranteed share of the capacity budget (``cores``, ``containerGroups``) and
  ``borrowingLimit``: how much more it may hold while others leave theirs idle (Kueue's
  ClusterQueue ``nominalQuota`` and ``borrowingLimit``; absent: no limit but the budget);
* ``weight``: how an idle team's share is divided among the teams that borrow it;
* ``priorities``: which request priorities it may use (default ``low``, ``normal``);
* ``secrets``, ``registries``, ``data``: the Key Vault secret names, registry prefixes and data
  ``container/prefix`` locations its requests may use, within the app-wide allowlists
  (VNB_KEY_VAULT_SECRETS, VNB_ALLOWED_REGISTRIES, VNB_DATA_CONTAINERS). Absent: the app's.

``operators`` lists members (same shape) who see and cancel every team's requests.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from shared.base.errors import FieldError
from shared.intake.request import PRIORITIES, TEAM_PATTERN, BatchRequest, normalize_image

VERSION: Final = 1
_TEAM = re.compile(TEAM_PATTERN)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MEMBER_KINDS: Final = ("principals", "applications", "groups", "functionKeys")
_TEAM_FIELDS: Final = (
    "name",
    "description",
    "members",
    "nominal",
    "borrowingLimit",
    "weight",
    "priorities",
    "secrets",
    "registries",
    "data",
)
DEFAULT_PRIORITIES: Final = ("low", "normal")


class TeamsInvalid(ValueError):
    """The teams file is not valid; the message names the entry."""


@dataclass(frozen=True)
class Members:
    principals: frozenset[str] = frozenset()
    applications: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    function_keys: frozenset[str] = frozenset()
    """SHA-256 hex digests of function keys."""

    def include(self, caller: Caller) -> bool:
        return bool(
            (caller.principal and caller.principal in self.principals)
            or (caller.application and caller.application in self.applications)
            or (self.groups & caller.groups)
            or (caller.key_digest and caller.key_digest in self.function_keys)
        )


@dataclass(frozen=True)
class Caller:
    """Who calls the API, as the host and Easy Auth present them (``shared.teams.identity``)."""

    principal: str = ""
    application: str = ""
    groups: frozenset[str] = frozenset()
    key_digest: str = ""
    name: str = ""
    """For the ledger: the principal id, or ``key:<first 12 hex of its digest>``."""


@dataclass(frozen=True)
class Team:
    name: str
    members: Members
    cores: Decimal
    groups: int
    borrow_cores: Decimal | None = None
    borrow_groups: int | None = None
    weight: Decimal = Decimal(1)
    priorities: tuple[str, ...] = DEFAULT_PRIORITIES
    secrets: tuple[str, ...] | None = None
    registries: tuple[str, ...] | None = None
    data: tuple[str, ...] | None = None

    def request_problems(self, request: BatchRequest) -> list[tuple[str, str]]:
        """(field, message) for each thing this team may not use in ``request``."""
        out: list[tuple[str, str]] = []
        priority = request.priority or "normal"
        if priority not in self.priorities:
            out.append(("priority", f"team {self.name!r} may use priorities {', '.join(self.priorities)}"))
        if self.registries is not None:
            full = normalize_image(request.image)
            if not any(full == r or full.startswith(r + "/") for r in self.registries):
                out.append(
                    (
                        "image",
                        f"registry of {full.split('/', 1)[0]!r} is not allowed for team {self.name!r}; "
                        f"allowed: {', '.join(self.registries) or 'none'}",
                    )
                )
        if self.secrets is not None and request.secrets:
            refused = sorted({v for v in request.secrets.values() if v not in self.secrets})
            if refused:
                out.append(("secrets", f"team {self.name!r} may not use Key Vault secret(s) {', '.join(refused)}"))
        if self.data is not None:
            for name, loc in (("input", request.input), ("output", request.output)):
                if loc is None:
                    continue
                where = f"{loc.container}/{loc.prefix}"
                if not any(where.startswith(p) for p in self.data):
                    out.append((name, f"team {self.name!r} may not use {where!r}; allowed: {', '.join(self.data)}"))
        return out


@dataclass(frozen=True)
class Teams:
    teams: tuple[Team, ...] = ()
    operators: Members = field(default_factory=Members)

    @property
    def enabled(self) -> bool:
        return bool(self.teams)

    def get(self, name: str | None) -> Team | None:
        return next((t for t in self.teams if t.name == name), None)

    def of(self, caller: Caller) -> tuple[str, ...]:
        """The teams ``caller`` belongs to, in file order."""
        return tuple(t.name for t in self.teams if t.members.include(caller))

    def is_operator(self, caller: Caller) -> bool:
        return self.operators.include(caller)


def key_digest(key: str) -> str:
    """How the teams file names a function key: its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def load(path: Path | str) -> Teams:
    """Read and validate a teams file; an empty path means no teams (tenancy off)."""
    if not str(path):
        return Teams()
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TeamsInvalid(f"{path}: cannot read the teams file: {e}") from None
    return parse(raw, source=str(path))


def parse(raw: Any, *, source: str = "teams file") -> Teams:
    if not isinstance(raw, dict):
        raise TeamsInvalid(f"{source}: must be an object with `version` and `teams`")
    if raw.get("version") != VERSION:
        raise TeamsInvalid(f"{source}: version: must be {VERSION}")
    unknown = sorted(set(raw) - {"version", "teams", "operators", "$schema"})
    if unknown:
        raise TeamsInvalid(f"{source}: unknown field(s) {', '.join(unknown)}")
    entries = raw.get("teams")
    if not isinstance(entries, list) or not entries:
        raise TeamsInvalid(f"{source}: teams: must be a non-empty list")
    teams: list[Team] = []
    for i, entry in enumerate(entries):
        team = _team(entry, f"{source}: teams[{i}]")
        if any(t.name == team.name for t in teams):
            raise TeamsInvalid(f"{source}: teams[{i}].name: {team.name!r} is declared twice")
        teams.append(team)
    return Teams(tuple(teams), _members(raw.get("operators", {}), f"{source}: operators"))


def _team(entry: Any, where: str) -> Team:
    if not isinstance(entry, dict):
        raise TeamsInvalid(f"{where}: must be an object")
    unknown = sorted(set(entry) - set(_TEAM_FIELDS))
    if unknown:
        raise TeamsInvalid(f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(_TEAM_FIELDS)})")
    name = entry.get("name")
    if not isinstance(name, str) or not _TEAM.fullmatch(name):
        raise TeamsInvalid(f"{where}.name: 1-32 lowercase letters, digits and -")
    where = f"{where} ({name})"
    nominal = _resources(entry.get("nominal"), f"{where}.nominal", required=True)
    assert nominal is not None  # required
    borrow = _resources(entry.get("borrowingLimit"), f"{where}.borrowingLimit", required=False)
    weight = _number(entry.get("weight", 1), f"{where}.weight")
    if weight <= 0:
        raise TeamsInvalid(f"{where}.weight: must be above 0")
    priorities = _strings(entry.get("priorities", list(DEFAULT_PRIORITIES)), f"{where}.priorities")
    bad = [p for p in priorities if p not in PRIORITIES]
    if bad or not priorities:
        raise TeamsInvalid(f"{where}.priorities: each one of {', '.join(PRIORITIES)}")
    return Team(
        name=name,
        members=_members(entry.get("members"), f"{where}.members"),
        cores=Decimal(nominal[0]),
        groups=int(nominal[1]),
        borrow_cores=None if borrow is None else Decimal(borrow[0]),
        borrow_groups=None if borrow is None else int(borrow[1]),
        weight=weight,
        priorities=tuple(priorities),
        secrets=_optional(entry, "secrets", where),
        registries=_optional(entry, "registries", where),
        data=_optional(entry, "data", where),
    )


def _resources(value: Any, where: str, *, required: bool) -> tuple[Decimal, Decimal] | None:
    if value is None and not required:
        return None
    if not isinstance(value, dict) or set(value) - {"cores", "containerGroups"}:
        raise TeamsInvalid(f"{where}: must be an object with `cores` and `containerGroups`")
    cores = _number(value.get("cores", 0), f"{where}.cores")
    groups = _number(value.get("containerGroups", 0), f"{where}.containerGroups")
    if cores < 0 or groups < 0 or groups != groups.to_integral_value():
        raise TeamsInvalid(f"{where}: cores ≥ 0, containerGroups a whole number ≥ 0")
    return cores, groups


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TeamsInvalid(f"{where}: must be a number")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise TeamsInvalid(f"{where}: must be a number") from None


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TeamsInvalid(f"{where}: must be a list of non-empty strings")
    return list(value)


def _optional(entry: Mapping[str, Any], name: str, where: str) -> tuple[str, ...] | None:
    return None if entry.get(name) is None else tuple(_strings(entry[name], f"{where}.{name}"))


def _members(value: Any, where: str) -> Members:
    if value is None:
        return Members()
    if not isinstance(value, dict) or set(value) - set(_MEMBER_KINDS):
        raise TeamsInvalid(f"{where}: an object with any of {', '.join(_MEMBER_KINDS)}")
    keys = _strings(value.get("functionKeys", []), f"{where}.functionKeys")
    bad = [k for k in keys if not _HEX64.fullmatch(k)]
    if bad:
        raise TeamsInvalid(
            f"{where}.functionKeys: SHA-256 hex digests of keys (64 lowercase hex), not keys; "
            "compute one with `printf %s KEY | sha256sum`"
        )

    def ids(kind: str) -> frozenset[str]:
        return frozenset(v.lower() for v in _strings(value.get(kind, []), f"{where}.{kind}"))

    return Members(ids("principals"), ids("applications"), ids("groups"), frozenset(keys))


def check_budget(teams: Teams, *, cores: Decimal | int, groups: int) -> list[str]:
    """Warnings (not errors): nominal shares that add up to more than the capacity budget."""
    out = []
    total_cores = sum((t.cores for t in teams.teams), Decimal(0))
    total_groups = sum(t.groups for t in teams.teams)
    if total_cores > Decimal(cores):
        out.append(f"nominal cores add up to {total_cores}, above VNB_CAPACITY_CORES={cores}")
    if total_groups > groups:
        out.append(f"nominal container groups add up to {total_groups}, above VNB_CAPACITY_CONTAINER_GROUPS={groups}")
    return out


def team_errors(teams: Teams, request: BatchRequest) -> list[FieldError]:
    """What the teams file refuses in ``request`` (none when no teams are configured): a request
    of no team or an unknown one, a priority, secret, registry or data location its team may not use."""
    if not teams.enabled:
        return []
    if not request.team:
        return [FieldError("team", "required: this app is shared by teams (VNB_TEAMS_FILE); name the request's team")]
    team = teams.get(request.team)
    if team is None:
        return [FieldError("team", f"no team {request.team!r} in the teams file (VNB_TEAMS_FILE)")]
    return [FieldError(name, why) for name, why in team.request_problems(request)]
