"""The Kubernetes API server's own name rules, for the strings the app sends it (pure).

Each check is the one kube-apiserver applies (k8s.io/apimachinery
``pkg/api/validate/content``: ``IsLabelKey``, ``IsLabelValue``; ``pkg/util/validation/validation.go``:
``IsDNS1123Label``, ``IsDNS1123Subdomain``). Go's ``regexp`` is RE2, where ``$`` without the
``m`` flag matches only at the end of the text; Python's ``$`` also matches before a final
``\\n``, so every check here uses ``re.fullmatch`` and a trailing newline fails as it does in
the API server. Each function returns the list of problems (empty when valid), like the Go ones.
"""

from __future__ import annotations

import re
from typing import Final

DNS1123_LABEL_MAX: Final = 63
DNS1123_SUBDOMAIN_MAX: Final = 253
LABEL_NAME_MAX: Final = 63
LABEL_VALUE_MAX: Final = 63

_DNS1123_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def dns1123_label(value: str) -> list[str]:
    """Problems of ``value`` as an RFC 1123 label (a namespace name): ≤ 63 of a-z 0-9 '-'."""
    return _dns(value, _DNS1123_LABEL, DNS1123_LABEL_MAX, "lowercase letters, digits and '-'")


def dns1123_subdomain(value: str) -> list[str]:
    """Problems of ``value`` as an RFC 1123 subdomain (a label prefix): ≤ 253 of a-z 0-9 '-' '.'."""
    return _dns(value, _DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MAX, "lowercase letters, digits, '-' and '.'")


def _dns(value: str, pattern: re.Pattern[str], longest: int, alphabet: str) -> list[str]:
    problems = []
    if len(value) > longest:
        problems.append(f"must be no more than {longest} characters")
    if not pattern.fullmatch(value):
        problems.append(f"must be {alphabet}, starting and ending with a letter or digit")
    return problems


def label_key(key: str) -> list[str]:
    """Problems of ``key`` as a label key: ``[prefix/]name`` (``IsLabelKey``)."""
    parts = key.split("/")
    if len(parts) > 2:
        return ["must be a name with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    problems = []
    name = parts[-1]
    if len(parts) == 2:
        if not parts[0]:
            problems.append("prefix part must be non-empty")
        else:
            problems += [f"prefix part {p}" for p in dns1123_subdomain(parts[0])]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > LABEL_NAME_MAX:
        problems.append(f"name part must be no more than {LABEL_NAME_MAX} characters")
    if name and not _QUALIFIED_NAME.fullmatch(name):
        problems.append(
            "name part must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    return problems


def label_value(value: str) -> list[str]:
    """Problems of ``value`` as a label value (``IsLabelValue``): empty, or ≤ 63 as a name part."""
    problems = []
    if len(value) > LABEL_VALUE_MAX:
        problems.append(f"must be no more than {LABEL_VALUE_MAX} characters")
    if value and not _QUALIFIED_NAME.fullmatch(value):
        problems.append("must be empty or letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
    return problems
