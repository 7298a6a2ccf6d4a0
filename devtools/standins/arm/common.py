"""What every module of the ARM stand-in shares: the request context a route handler gets, resource-id
normalisation (ARM ids are case-insensitive) and the route patterns of the providers modelled."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from devtools.standins.arm.identity import (
    Principal,
)

ARM_AUDIENCE = "https://management.azure.com"

_WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})


def _utcnow_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _norm_path(raw: str) -> str:
    segs = [s for s in unquote(raw).split("/") if s]
    return "/" + "/".join(segs)


def _key(resource_id: str) -> str:
    return _norm_path(resource_id).lower()


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$", re.IGNORECASE)


def _scope_under(scope: str, prefix: str) -> bool:
    s, p = _key(scope), _key(prefix)
    return p == "/" or s == p or s.startswith(p + "/")


@dataclass
class _Ctx:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    principal: Principal
    g: dict[str, str]


_Result = tuple[int, dict[str, str], Any]
_Handler = Callable[[_Ctx], _Result]

_S = r"/subscriptions/(?P<sub>[^/]+)"
_RG = _S + r"/resourcegroups/(?P<rg>[^/]+)"
_NET = _RG + r"/providers/microsoft\.network/virtualnetworks"
_AKS = _RG + r"/providers/microsoft\.containerservice/managedclusters"
_AUTHZ = r"(?P<scope>.*)/providers/microsoft\.authorization"
