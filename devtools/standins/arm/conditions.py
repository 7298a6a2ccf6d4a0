"""Azure ABAC role-assignment conditions (version 2.0), parsed and evaluated as ARM does for the
operators and attributes this project's conditions use.

Sources (each rule below names the one it follows):

* [FORMAT] "Azure role assignment condition format and syntax",
  learn.microsoft.com/azure/role-based-access-control/conditions-format — ``!(ActionMatches{...})``
  ``OR`` expression; ``AND``/``&&``, ``OR``/``||``, ``NOT``/``!``; string, GUID and cross-product
  operators; "if you have three or more expressions ... you must add parentheses" (no implicit
  precedence between ``AND`` and ``OR``).
* [ATTRS] "Authorization actions and attributes",
  learn.microsoft.com/azure/role-based-access-control/conditions-authorization-actions-attributes —
  ``Microsoft.Authorization/roleAssignments/write`` has the *request* attributes RoleDefinitionId,
  PrincipalId, PrincipalType; ``.../roleAssignments/delete`` has the same as *resource* attributes.
  No attribute names the scope.
* [DELEGATE] "Delegate Azure role assignment management to others with conditions",
  learn.microsoft.com/azure/role-based-access-control/delegate-role-assignments-overview, and its
  examples page (delegate-role-assignments-examples): the "Constrain roles", "Constrain roles and
  principal types" and "Constrain roles and specific principals" templates this grammar covers.

Anything outside this subset (another function, an attribute source other than ``@Request`` /
``@Resource``, mixed ``AND``/``OR`` without parentheses) raises :class:`ConditionError`; the
stand-in then treats the condition as not fulfilled (fail closed), so a typo in the Bicep can never
widen what the stand-in allows.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Attributes = Mapping[str, Sequence[str]]
"""``"@Request[Microsoft.Authorization/roleAssignments:PrincipalId]"`` -> values (lists: [FORMAT]
cross-product operators compare sets; a missing attribute is the empty set)."""


class ConditionError(ValueError):
    """The condition is not valid (or uses something the stand-in does not model)."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<attr>@(?:Request|Resource)\[[^\]]+\])
      | (?P<set>\{[^}]*\})
      | (?P<str>'(?:[^'\\]|\\.)*')
      | (?P<op>&&|\|\||!|\(|\))
      | (?P<word>[A-Za-z][A-Za-z0-9:]*)
    )""",
    re.VERBOSE,
)
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _guid(value: str) -> uuid.UUID | None:
    return uuid.UUID(value) if _GUID.fullmatch(value.strip()) else None


def _guid_equals(left: str, right: str) -> bool:
    # [FORMAT] GuidEquals: case-insensitive match of the 00000000-0000-0000-0000-000000000000 form.
    a, b = _guid(left), _guid(right)
    return a is not None and a == b


# [FORMAT] "String comparison" and "GUID comparison" operators (the ones this project uses, and
# their negations).
_FUNCTIONS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda a, b: a == b,
    "StringEqualsIgnoreCase": lambda a, b: a.lower() == b.lower(),
    "StringNotEquals": lambda a, b: a != b,
    "StringNotEqualsIgnoreCase": lambda a, b: a.lower() != b.lower(),
    "StringStartsWith": lambda a, b: a.startswith(b),
    "StringStartsWithIgnoreCase": lambda a, b: a.lower().startswith(b.lower()),
    "GuidEquals": _guid_equals,
    "GuidNotEquals": lambda a, b: not _guid_equals(a, b),
}
# [FORMAT] "Cross product comparison": (quantifier over the left values, over the right values).
_QUANTIFIERS: dict[str, tuple[Callable[..., bool], Callable[..., bool]]] = {
    "ForAnyOfAnyValues": (any, any),
    "ForAllOfAnyValues": (all, any),
    "ForAnyOfAllValues": (any, all),
    "ForAllOfAllValues": (all, all),
}


@dataclass(frozen=True)
class Request:
    """What a condition is evaluated against: the action being authorized and its attributes."""

    action: str
    attributes: Attributes


_Node = Callable[[Request], bool]


def _values(raw_set: str) -> list[str]:
    """``{'a', 'b'}`` or ``{guid, guid}`` -> the values ([FORMAT]: quoted strings, bare GUIDs)."""
    items = re.findall(r"'((?:[^'\\]|\\.)*)'|([^,\s]+)", raw_set[1:-1])
    return [quoted or bare for quoted, bare in items]


def _action_matches(pattern: str) -> _Node:
    # [FORMAT] ActionMatches: "the action matching logic ... inside a Permission" (``*`` wildcard,
    # case-insensitive, like role definitions' actions).
    regex = re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$", re.IGNORECASE)
    return lambda request: bool(regex.fullmatch(request.action))


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                raise ConditionError(f"unexpected text at {pos}: {text[pos : pos + 30]!r}")
            kind = m.lastgroup
            assert kind is not None
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ConditionError("the condition ends too early")
        self.i += 1
        return token

    def parse(self) -> _Node:
        node = self.expression()
        if self.peek() is not None:
            raise ConditionError(f"unexpected {self.peek()!r}")
        return node

    def _binary(self) -> str | None:
        token = self.peek()
        if token is None:
            return None
        kind, value = token
        if (kind == "word" and value in ("AND", "OR")) or (kind == "op" and value in ("&&", "||")):
            return "AND" if value in ("AND", "&&") else "OR"
        return None

    def expression(self) -> _Node:
        terms = [self.unary()]
        operators: set[str] = set()
        while (op := self._binary()) is not None:
            self.take()
            operators.add(op)
            terms.append(self.unary())
        if len(operators) > 1:
            # [FORMAT] "Grouping and precedence": a AND b OR c must be parenthesised.
            raise ConditionError("AND and OR mixed without parentheses")
        if not operators:
            return terms[0]
        combine = all if operators == {"AND"} else any
        return lambda request: combine(term(request) for term in terms)

    def unary(self) -> _Node:
        kind, value = self.take()
        if (kind == "op" and value == "!") or (kind == "word" and value == "NOT"):
            inner = self.unary()
            return lambda request: not inner(request)
        if kind == "op" and value == "(":
            node = self.expression()
            if self.take() != ("op", ")"):
                raise ConditionError("missing ')'")
            return node
        if kind == "word" and value == "ActionMatches":
            set_kind, raw = self.take()
            patterns = _values(raw) if set_kind == "set" else []
            if len(patterns) != 1:
                raise ConditionError("ActionMatches takes one quoted action pattern: ActionMatches{'...'}")
            return _action_matches(patterns[0])
        if kind == "attr":
            return self.comparison(value)
        raise ConditionError(f"unexpected {value!r}")

    def comparison(self, attribute: str) -> _Node:
        kind, operator = self.take()
        if kind != "word":
            raise ConditionError(f"an operator must follow {attribute}, not {operator!r}")
        quantifier, _, function = operator.rpartition(":")
        if function not in _FUNCTIONS or (quantifier and quantifier not in _QUANTIFIERS):
            raise ConditionError(f"operator {operator!r} is not modelled by the stand-in")
        compare = _FUNCTIONS[function]
        value_kind, raw = self.take()
        if value_kind == "set":
            right = _values(raw)
        elif value_kind == "str":
            right = [raw[1:-1]]
        elif value_kind == "word" and _guid(raw) is not None:
            right = [raw]
        else:
            raise ConditionError(f"a value must follow {operator!r}, not {raw!r}")
        if not quantifier and len(right) != 1:
            raise ConditionError(f"{operator} compares single values; use ForAnyOfAnyValues:{function} for a set")
        outer, inner = _QUANTIFIERS[quantifier or "ForAnyOfAnyValues"]
        key = attribute.lower()

        def node(request: Request) -> bool:
            left = next((list(v) for k, v in request.attributes.items() if k.lower() == key), [])
            if not left:
                return False  # an attribute the request does not have matches nothing
            return bool(outer(inner(compare(a, b) for b in right) for a in left))

        return node


def parse(condition: str) -> _Node:
    """The condition as a predicate over :class:`Request`; ConditionError if it is not valid."""
    return _Parser(condition).parse()


def fulfilled(condition: str, request: Request) -> bool:
    """Whether ``condition`` allows ``request``; an invalid condition allows nothing."""
    try:
        return parse(condition)(request)
    except ConditionError:
        return False


def role_assignment_attributes(source: str, properties: Mapping[str, object]) -> dict[str, list[str]]:
    """[ATTRS] The attributes of a role assignment (``source`` ``Request`` for write, ``Resource`` for
    delete): RoleDefinitionId as the role's GUID (the docs' examples compare it with GuidEquals to
    a bare GUID), PrincipalId, PrincipalType."""
    prefix = f"@{source}[Microsoft.Authorization/roleAssignments:"
    out: dict[str, list[str]] = {}
    role = str(properties.get("roleDefinitionId") or "").rstrip("/").rsplit("/", 1)[-1]
    if role:
        out[prefix + "RoleDefinitionId]"] = [role]
    for name in ("principalId", "principalType"):
        value = properties.get(name)
        if value:
            out[prefix + name[0].upper() + name[1:] + "]"] = [str(value)]
    return out
