"""Request schema v1: every malformed message is answered with a precise field error."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.config.settings import Settings
from shared.intake.decode import decode_body
from shared.intake.request import RequestInvalid, normalize_image, parse_request
from shared.intake.schema import json_schema
from tests.conftest import make_env

GOOD = {"image": "mcr.microsoft.com/azurelinux/base/core:3.0", "command": ["sh", "-c", "echo hi"]}


def errors_for(body: bytes, settings: Settings) -> list[tuple[str, str]]:
    data, errors = decode_body(body)
    if data is None:
        return [(e.field, e.message) for e in errors]
    try:
        parse_request(data, settings=settings)
    except RequestInvalid as e:
        return [(x.field, x.message) for x in e.errors]
    return []


def j(**fields: Any) -> bytes:
    return json.dumps({**GOOD, **fields}).encode()


# (case, body, field the error must name, a phrase the message must contain)
MALFORMED: list[tuple[str, bytes, str, str]] = [
    ("not json", b"hello world", "$body", "not JSON"),
    ("not utf-8", b"\xff\xfe{\x00", "$body", "not UTF-8"),
    ("json array", b"[1, 2]", "$body", "expected a JSON object"),
    ("json string", b'"image"', "$body", "expected a JSON object"),
    ("empty", b"", "$body", "not JSON"),
    ("missing image", json.dumps({"command": ["x"]}).encode(), "image", "required"),
    ("image wrong type", j(image=42), "image", "string"),
    ("bad image reference", j(image="UPPER/Case:tag!"), "image", "not a valid image reference"),
    ("registry not allowed", j(image="evil.example.com/miner:latest"), "image", "is not allowed"),
    ("unknown field", j(privileged=True), "privileged", "unknown field"),
    ("securityContext refused", j(securityContext={"privileged": True}), "securityContext", "unknown field"),
    ("volumes refused", j(volumes=[{"hostPath": {"path": "/"}}]), "volumes", "unknown field"),
    ("command not a list", j(command="echo hi"), "command", "list"),
    ("args without command", json.dumps({"image": GOOD["image"], "args": ["x"]}).encode(), "$", "args"),
    ("env not strings", j(env={"A": 1}), "env.A", "string"),
    ("env bad name", j(env={"1BAD": "x"}), "env.1BAD", "environment variable name"),
    ("env reserved name", j(env={"VNB_REQUEST_KEY": "x"}), "env", "reserved"),
    ("env oversize", j(env={f"V{i}": "x" * 1000 for i in range(40)}), "env", "at most"),
    ("cpu over ACI bound", j(cpu=8), "cpu", "VNB_MAX_CPU"),
    ("cpu not a quantity", j(cpu="lots"), "cpu", "not a Kubernetes quantity"),
    ("cpu too small", j(cpu="10m"), "cpu", "at least 0.1"),
    ("memory over bound", j(memory="64Gi"), "memory", "VNB_MAX_MEMORY"),
    ("memory negative", j(memory="-1Gi"), "memory", "greater than 0"),
    ("negative completions", j(completions=-1), "completions", "greater than or equal to 1"),
    ("completions over limit", j(completions=1000), "$", "VNB_MAX_COMPLETIONS"),
    ("parallelism > completions", j(completions=2, parallelism=5), "$", "parallelism cannot exceed"),
    ("negative retries", j(retries=-3), "retries", "greater than or equal to 0"),
    ("retries too many", j(retries=99), "retries", "less than or equal to 10"),
    ("timeout zero", j(timeoutSeconds=0), "timeoutSeconds", "greater than or equal to 1"),
    ("timeout over max", j(timeoutSeconds=10**7), "$", "VNB_MAX_TIMEOUT_SECONDS"),
    ("bad label key", j(labels={"-bad": "x"}), "labels", "name part must be"),
    ("bad label value", j(labels={"team": "has spaces"}), "labels", "value must be"),
    ("reserved label", j(labels={"vnode-batch.io/state": "reported"}), "labels", "reserved"),
    ("managed-by label", j(labels={"app.kubernetes.io/managed-by": "me"}), "labels", "reserved"),
    # The example: the batch API refuses a template setting the Job controller's labels.
    ("job-name label", j(labels={"job-name": "nightly-export"}), "labels", "Job controller"),
    ("controller-uid label", j(labels={"controller-uid": "x"}), "labels", "Job controller"),
    ("batch job-name label", j(labels={"batch.kubernetes.io/job-name": "x"}), "labels", "reserved"),
    ("batch controller-uid", j(labels={"batch.kubernetes.io/controller-uid": "x"}), "labels", "reserved"),
    ("kubernetes.io label", j(labels={"kubernetes.io/role": "x"}), "labels", "reserved"),
    ("k8s.io label", j(labels={"k8s.io/x": "y"}), "labels", "reserved"),
    ("k8s.io subdomain", j(labels={"node.k8s.io/x": "y"}), "labels", "reserved"),
    ("env empty value", j(env={"EMPTY": ""}), "env.EMPTY", "drops environment variables with an empty value"),
    ("env name with dot", j(env={"A.B": "x"}), "env.A.B", "environment variable name"),
    ("env name with dash", j(env={"A-B": "x"}), "env.A-B", "environment variable name"),
    ("memory 16Gi over ACI's 16 GB", j(memory="16Gi"), "memory", "17.2 GB in ACI's 0.1 GB steps"),
    ("memory 15Gi over ACI's 16 GB", j(memory="15Gi"), "memory", "16.2 GB"),
    ("cpu rounded over max", j(cpu="4.001"), "cpu", "4010m once rounded up"),
    ("id with spaces", j(id="my id"), "id", "1-128 characters"),
    ("id too long", j(id="a" * 200), "id", "1-128 characters"),
    ("correlationId control chars", j(correlationId="a\nb"), "correlationId", "printable ASCII"),
    ("completions as string", j(completions="3"), "completions", "valid integer"),
    # docs/schemas/request.v1.json: cpu and memory are a string or a number, never a boolean
    ("cpu true", j(cpu=True), "cpu", "not true"),
    ("memory false", j(memory=False), "memory", "not false"),
]


@pytest.mark.parametrize(("case", "body", "field", "phrase"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_request_names_field(case: str, body: bytes, field: str, phrase: str, settings: Settings) -> None:
    errors = errors_for(body, settings)
    assert errors, f"{case}: accepted"
    fields = [f for f, _ in errors]
    assert field in fields, errors
    message = next(m for f, m in errors if f == field)
    assert phrase in message, errors


def test_valid_request_accepted_with_normalised_resources(settings: Settings) -> None:
    request = parse_request({**GOOD, "cpu": "500m", "memory": "1536Mi", "completions": 3}, settings=settings)
    assert request.cpu == "500m"
    assert request.memory == "1.5Gi"
    assert request.completions == 3


def test_user_labels_without_prefix_or_recommended_are_accepted(settings: Settings) -> None:
    labels = {"app.kubernetes.io/name": "ledger", "team": "data", "Job.Kind_2": "nightly-export", "empty": ""}
    assert parse_request({**GOOD, "labels": labels}, settings=settings).labels == labels


def test_env_values_with_dollars_are_accepted_as_written(settings: Settings) -> None:
    request = parse_request({**GOOD, "env": {"DB_PASSWORD": "s3cr$$t", "_X1": "$(HOME)"}}, settings=settings)
    assert request.env == {"DB_PASSWORD": "s3cr$$t", "_X1": "$(HOME)"}


def test_every_error_reported_at_once(settings: Settings) -> None:
    errors = errors_for(j(cpu=99, retries=-1, bogus=1), settings)
    assert {"cpu", "retries", "bogus"} <= {f for f, _ in errors}


def test_base64_body_from_storage_explorer_is_accepted(settings: Settings) -> None:
    body = base64.b64encode(json.dumps(GOOD).encode())
    data, errors = decode_body(body)
    assert errors == []
    assert data is not None
    assert parse_request(data, settings=settings).image == GOOD["image"]


def test_json_nested_past_the_parser_limit_is_a_field_error_not_a_crash() -> None:
    # 20 KB of "[" makes CPython's json raise RecursionError: that must become a rejection,
    # not an exception that retries the message into the poison queue.
    data, errors = decode_body(b"[" * 20_000)
    assert data is None
    assert [(e.field, e.message) for e in errors] == [("$body", "not usable JSON: nested too deeply")]


def test_a_number_longer_than_cpython_converts_is_a_field_error_not_a_crash() -> None:
    # Found by the deadletter property test: 8,000 digits made json.loads raise ValueError.
    data, errors = decode_body(b"1" * 8000)
    assert data is None
    assert [e.field for e in errors] == ["$body"]
    assert "4300 digits" in errors[0].message


def test_docker_hub_short_names_need_docker_io_allowed(make_settings: Any) -> None:
    only_mcr = make_settings(VNB_ALLOWED_REGISTRIES="mcr.microsoft.com")
    assert errors_for(j(image="busybox"), only_mcr)
    assert normalize_image("busybox") == "docker.io/library/busybox"
    assert normalize_image("myorg/tool:1") == "docker.io/myorg/tool:1"
    assert errors_for(j(image="busybox:1.36"), make_settings(VNB_ALLOWED_REGISTRIES="docker.io")) == []
    assert errors_for(j(image="evil.io/x"), make_settings(VNB_ALLOWED_REGISTRIES="*")) == []


def test_registry_prefix_must_match_a_path_boundary(make_settings: Any) -> None:
    s = make_settings(VNB_ALLOWED_REGISTRIES="myacr.azurecr.io/team")
    assert errors_for(j(image="myacr.azurecr.io/team/job:1"), s) == []
    assert errors_for(j(image="myacr.azurecr.io/teamevil/job:1"), s)
    assert errors_for(j(image="myacr.azurecr.io.evil.com/team/job:1"), s)


def test_content_hash_ignores_id_but_not_content(settings: Settings) -> None:
    a = parse_request({**GOOD, "id": "a"}, settings=settings)
    b = parse_request({**GOOD, "id": "b"}, settings=settings)
    c = parse_request({**GOOD, "id": "a", "env": {"X": "1"}}, settings=settings)
    assert a.content_hash() == b.content_hash() != c.content_hash()


def test_published_schema_matches_model() -> None:
    from tests.conftest import REPO

    published = json.loads((REPO / "docs" / "schemas" / "request.v1.json").read_text())
    assert published == json.loads(json.dumps(json_schema())), "run: python -m shared.cli.schema_export"


@given(st.dictionaries(st.text(max_size=12), st.one_of(st.none(), st.integers(), st.text(max_size=20)), max_size=6))
def test_arbitrary_objects_never_raise_unexpectedly(data: dict[str, Any]) -> None:
    from tests.conftest import make_env

    settings = Settings.from_env(make_env())
    try:
        parse_request(data, settings=settings)
    except RequestInvalid as e:
        assert e.errors


TEST_SETTINGS = Settings.from_env(make_env())


@pytest.mark.parametrize(("number", "expected"), [(0.33, "330m"), (1.1, "1100m"), (0.11, "110m"), (2.5, "2500m")])
def test_cpu_as_a_json_number_is_read_as_written(number: float, expected: str) -> None:
    # Decimal(0.33) is 0.330000000000000015…: it used to round up to 331m (340m on ACI)
    body = json.dumps({**GOOD, "cpu": number}).encode()
    data, _ = decode_body(body)
    assert data is not None
    assert parse_request(data, settings=TEST_SETTINGS).cpu == expected


@given(st.decimals(min_value="0.1", max_value="4", places=4, allow_nan=False, allow_infinity=False))
def test_cpu_as_a_number_and_as_a_string_give_the_same_request(cores: Any) -> None:
    text = str(cores)
    as_number = json.loads(json.dumps({**GOOD, "cpu": float(text)}))
    as_string = {**GOOD, "cpu": text}
    outcomes = []
    for data in (as_number, as_string):
        try:
            outcomes.append(parse_request(data, settings=TEST_SETTINGS).cpu)
        except RequestInvalid as e:
            outcomes.append(str(e))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize(
    "encode",
    [base64.encodebytes, lambda raw: base64.b64encode(raw).replace(b"A", b"A\r\n")],
    ids=["encodebytes (76-column lines)", "CRLF line breaks"],
)
def test_line_wrapped_base64_bodies_are_recognised(encode: Any) -> None:
    # GNU `base64` and Python's base64.encodebytes wrap at 76 columns (RFC 2045 section 6.8)
    request = {**GOOD, "env": {"LONG": "x" * 200}}
    body = encode(json.dumps(request).encode())
    assert b"\n" in body.strip()
    data, errors = decode_body(body)
    assert errors == []
    assert data == request


def test_base64_of_a_json_array_says_an_object_is_expected() -> None:
    data, errors = decode_body(base64.b64encode(b'[{"image": "busybox"}]'))
    assert data is None
    assert [(e.field, e.message) for e in errors] == [("$body", "expected a JSON object, got list")]


def test_base64_with_other_characters_is_still_not_decoded() -> None:
    body = base64.b64encode(json.dumps(GOOD).encode())
    _, errors = decode_body(body[:8] + b"*" + body[8:])
    assert [e.field for e in errors] == ["$body"]
    assert errors[0].message.startswith("not JSON")


def test_a_json_syntax_error_reads_as_one_sentence() -> None:
    _, errors = decode_body(b'{"image": "busy')
    assert [(e.field, e.message) for e in errors] == [
        ("$body", "not JSON: Unterminated string starting at: line 1 column 11 (char 10)")
    ]


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        (1.1, "1.1 is not a whole number of bytes"),
        ([1], "must be a number or a Kubernetes quantity string"),
        ({"Gi": 1}, "must be a number or a Kubernetes quantity string"),
    ],
)
def test_a_memory_of_the_wrong_kind_is_one_error_on_memory(value: Any, phrase: str) -> None:
    # not one error per pydantic union member ("memory.str", "memory.int")
    errors = errors_for(j(memory=value), TEST_SETTINGS)
    assert len(errors) == 1, errors
    [(field, message)] = errors
    assert field == "memory"
    assert phrase in message


@pytest.mark.parametrize("value", ["16.01G", "15Gi", 17_000_000_000])
def test_a_memory_over_the_limit_is_echoed_as_given(value: Any) -> None:
    [(field, message)] = errors_for(j(memory=value), TEST_SETTINGS)
    assert field == "memory"
    assert message.startswith(f"{value} (")
    assert "Gi (" not in message.removeprefix(str(value))  # no 14.91047441959381103515625Gi


def test_a_non_finite_cpu_number_is_named_as_given() -> None:
    assert errors_for(b'{"image": "mcr.microsoft.com/a", "cpu": Infinity}', TEST_SETTINGS) == [
        ("cpu", "cpu must be a finite number, not inf")
    ]
