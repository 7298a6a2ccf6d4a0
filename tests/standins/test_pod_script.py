"""The stand-in containers' ``upload-blob``: the SAS URL comes from a mounted file and never into the log.

The success path, against Azurite's blob service with a real user delegation SAS, is the demo's
(tests/integration/test_demo.py)."""

from __future__ import annotations

from devtools.standins.pod_script import plan_container

OUT = "/var/run/secrets/vnode-batch/VNB_OUTPUT_URL"


def _run(script: str, files: dict[str, str]) -> tuple[list[str], int]:
    lines, _, code = plan_container(["sh", "-c", script], {"VNB_OUTPUT_PREFIX": "run-1/"}, pod_name="p",
                                    first_attempt=True, time_scale=0.0, files=files)  # fmt: skip
    return [text for _, text in lines], code


def test_upload_blob_without_its_url_file_fails_like_cat() -> None:
    assert _run(f"upload-blob {OUT} ${{VNB_OUTPUT_PREFIX}}a.csv x; echo after", {}) == (
        [f"upload-blob: can't open '{OUT}': No such file or directory"],
        1,
    )


def test_upload_blob_needs_a_file_and_a_name() -> None:
    assert _run(f"upload-blob {OUT}", {OUT: "https://127.0.0.1:1/acct/results?sig=s3cr3t"}) == (
        ["upload-blob: usage: upload-blob URL_FILE NAME TEXT..."],
        1,
    )
