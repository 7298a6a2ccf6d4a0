"""The teams file: validation naming the entry, membership, and what a team may use."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shared.intake.request import BatchRequest
from shared.teams.model import Caller, TeamsInvalid, key_digest, load, parse, team_errors

KEY = key_digest("dev-key-a")


def teams(**overrides: Any) -> dict[str, Any]:
    a: dict[str, Any] = {
        "name": "team-a",
        "members": {"principals": ["11111111-AAAA-0000-0000-000000000000"], "functionKeys": [KEY]},
        "nominal": {"cores": 60, "containerGroups": 60},
        "borrowingLimit": {"cores": 20, "containerGroups": 20},
        "weight": 3,
        "priorities": ["normal", "urgent"],
        "secrets": ["db-password"],
        "registries": ["mcr.microsoft.com"],
        "data": ["team-a/"],
    }
    a.update(overrides)
    b = {"name": "team-b", "members": {"groups": ["g-b"]}, "nominal": {"cores": 40, "containerGroups": 40}}
    return {"version": 1, "teams": [a, b], "operators": {"applications": ["ops-app"]}}


def test_a_valid_file_reads_every_field() -> None:
    got = parse(teams())
    a = got.get("team-a")
    assert a is not None
    assert a.cores == Decimal(60)
    assert a.borrow_groups == 20
    assert a.weight == Decimal(3)
    assert got.get("team-b") is not None
    assert got.get("team-b").priorities == ("low", "normal")


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"nominal": {"cores": -1, "containerGroups": 1}}, "teams[0] (team-a).nominal"),
        ({"weight": 0}, "teams[0] (team-a).weight"),
        ({"priorities": ["vip"]}, "teams[0] (team-a).priorities"),
        ({"members": {"functionKeys": ["plain-key"]}}, "teams[0] (team-a).members.functionKeys"),
        ({"name": "Team A"}, "teams[0].name"),
        ({"colour": "red"}, "teams[0]: unknown field(s) colour"),
        ({"name": "team-b"}, "teams[1].name: 'team-b' is declared twice"),
    ],
)
def test_an_invalid_entry_is_named(change: dict[str, Any], names: str) -> None:
    with pytest.raises(TeamsInvalid, match=names.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        parse(teams(**change))


def test_the_file_needs_its_version(tmp_path: Path) -> None:
    path = tmp_path / "teams.json"
    path.write_text(json.dumps({**teams(), "version": 2}))
    with pytest.raises(TeamsInvalid, match="version: must be 1"):
        load(path)
    assert not load("").enabled  # no file: no tenancy


def test_membership_by_principal_group_application_or_key() -> None:
    got = parse(teams())
    assert got.of(Caller(principal="11111111-aaaa-0000-0000-000000000000")) == ("team-a",)
    assert got.of(Caller(groups=frozenset({"g-b"}))) == ("team-b",)
    assert got.of(Caller(key_digest=key_digest("dev-key-a"))) == ("team-a",)
    assert got.of(Caller(key_digest=key_digest("another"))) == ()
    assert got.is_operator(Caller(application="ops-app"))
    assert not got.is_operator(Caller(principal="x"))


def request(**fields: Any) -> BatchRequest:
    return BatchRequest.model_validate({"image": "mcr.microsoft.com/azurelinux/base/core:3.0", **fields})


def test_a_request_must_name_a_known_team() -> None:
    got = parse(teams())
    assert [e.field for e in team_errors(got, request())] == ["team"]
    assert "no team 'team-z'" in team_errors(got, request(team="team-z"))[0].message
    assert team_errors(got, request(team="team-a")) == []
    assert team_errors(parse(teams()).__class__(), request()) == []  # no teams file: nothing to check


def test_what_a_team_may_not_use_is_refused_field_by_field() -> None:
    got = parse(teams())
    errors = team_errors(
        got,
        request(
            team="team-a",
            image="docker.io/library/busybox",
            priority="high",
            secrets={"DB": "other-secret"},
            output={"container": "team-b", "prefix": "x/"},
        ),
    )
    assert sorted(e.field for e in errors) == ["image", "output", "priority", "secrets"]
    assert any("other-secret" in e.message for e in errors)
