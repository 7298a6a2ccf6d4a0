"""The per-request Secret, its mount and masking (pure values)."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from shared.base.conventions import ANN_SECRET
from shared.config.settings import Settings
from shared.intake.request import RequestInvalid, parse_request
from shared.job.render import JobMeta, build_job
from shared.secrets.files import MASK, MOUNT_PATH, redact, secret_manifest, secret_name, secret_of, values_of


def _job(make_settings: Callable[..., Settings]) -> dict[str, object]:
    settings = make_settings(VNB_KEY_VAULT_URL="https://kv.vault.azure.net")
    request = parse_request(
        {"image": "mcr.microsoft.com/a:1", "secrets": {"DB_PASSWORD": "db-password"}}, settings=settings
    )
    return build_job(request, JobMeta(key="k1", message_id="m1", enqueued_at=None), settings=settings)


def test_mount_is_a_required_secret_volume_never_env(make_settings: Callable[..., Settings]) -> None:
    job = _job(make_settings)  # build_job mounts the files of a request with secrets
    name = secret_name(job["metadata"]["name"])  # type: ignore[index]
    pod = job["spec"]["template"]["spec"]  # type: ignore[index]
    assert pod["volumes"] == [{"name": "vnb-secrets", "secret": {"secretName": name, "optional": False}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "vnb-secrets", "mountPath": MOUNT_PATH, "readOnly": True}]
    assert all("valueFrom" not in e for e in pod["containers"][0]["env"])
    assert secret_of(job) == name == job["metadata"]["annotations"][ANN_SECRET]  # type: ignore[index]


def test_secret_manifest_holds_the_values_and_an_owner(make_settings: Callable[..., Settings]) -> None:
    job = _job(make_settings)
    created = {"metadata": {**job["metadata"], "uid": "u-1"}}  # type: ignore[dict-item]
    secret = secret_manifest(job=job, values={"DB_PASSWORD": "pw"}, owner=created)  # type: ignore[arg-type]
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["DB_PASSWORD"]) == b"pw"
    assert secret["metadata"]["ownerReferences"][0] == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job["metadata"]["name"],  # type: ignore[index]
        "uid": "u-1",
        "blockOwnerDeletion": False,
        "controller": False,
    }
    assert values_of(secret) == ["pw"]


def test_redact_masks_whole_values_and_their_lines() -> None:
    text = "connecting with hunter2-long\nline-one-of-key\nok"
    assert (
        redact(text, ["hunter2-long", "line-one-of-key\nline-two-of-key", ""]) == f"connecting with {MASK}\n{MASK}\nok"
    )


def test_secrets_need_a_vault_and_the_allowlist(make_settings: Callable[..., Settings]) -> None:
    body = {"image": "mcr.microsoft.com/a:1", "secrets": {"DB_PASSWORD": "db-password"}}
    with pytest.raises(RequestInvalid, match="VNB_KEY_VAULT_URL"):
        parse_request(body, settings=make_settings())
    allow = make_settings(VNB_KEY_VAULT_URL="https://kv.vault.azure.net", VNB_KEY_VAULT_SECRETS="other")
    with pytest.raises(RequestInvalid, match="VNB_KEY_VAULT_SECRETS") as e:
        parse_request(body, settings=allow)
    assert e.value.errors[0].field == "secrets"
    bad = {"image": "mcr.microsoft.com/a:1", "secrets": {"../x": "db_password"}}
    with pytest.raises(RequestInvalid) as e:
        parse_request(bad, settings=make_settings(VNB_KEY_VAULT_URL="https://kv.vault.azure.net"))
    assert all(err.field.startswith("secrets") and "letters" in err.message for err in e.value.errors)


def test_env_values_are_masked_in_echoes_and_restored_for_a_retry() -> None:
    import json

    from shared.intake.deferral import ENVELOPE
    from shared.secrets.scrub import env_restored, scrub_body, without_env_values

    body = json.dumps({"image": "x", "env": {"TOKEN": "tok-123", "MODE": "a$b"}}).encode()
    assert json.loads(scrub_body(body))["env"] == {"TOKEN": "***", "MODE": "***"}
    assert scrub_body(b"not json") == b"not json"
    wrapped = {ENVELOPE: {"key": "k"}, "request": {"env": {"TOKEN": "tok-123"}}}
    assert without_env_values(wrapped)["request"]["env"] == {"TOKEN": "***"}
    carried = without_env_values({"image": "x", "env": {"TOKEN": "tok-123", "MODE": "a$b"}})
    container_env = [{"name": "TOKEN", "value": "tok-123"}, {"name": "MODE", "value": "a$$b"}]
    assert env_restored(carried, container_env)["env"] == {"TOKEN": "tok-123", "MODE": "a$b"}


def test_a_body_with_a_lone_surrogate_is_scrubbed_not_crashed() -> None:
    """JSON allows "\\ud800", UTF-8 cannot encode it: the scrubbed body keeps it escaped (issue 20's fuzz)."""
    import json

    from shared.secrets.scrub import scrub_body

    body = b'{"id":"\\ud800","image":"busybox","env":{"TOKEN":"s3cr3t"}}'
    scrubbed = scrub_body(body)
    assert b"s3cr3t" not in scrubbed
    assert json.loads(scrubbed)["id"] == "\ud800"
