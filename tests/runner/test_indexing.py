"""Indexing, settings and host.json handling: what the host and worker refuse, we refuse too."""

from __future__ import annotations

import json
import os
import typing
from datetime import UTC, datetime
from pathlib import Path

import azure.functions as func
import pytest

from devtools.runner import (
    DEVELOPMENT_STORAGE_CONNECTION,
    FunctionLoadError,
    LocalRunner,
    QueueOutputBinding,
    QueuesOptions,
    RunnerError,
    exported_settings,
    load_local_settings,
    mask_connection_string,
    parse_schedule,
)
from tests.runner import sample_app

SETTINGS = {
    "TestStorage": "UseDevelopmentStorage=true",
    "WORK_QUEUE": "jobs",
    "WORK_OUT_QUEUE": "jobs-out",
    "ECHO_QUEUE": "echo",
    "TICK_SCHEDULE": "0 */5 * * * *",
}


def test_missing_setting_names_the_setting() -> None:
    settings = {k: v for k, v in SETTINGS.items() if k != "ECHO_QUEUE"}
    with pytest.raises(RunnerError, match=r"'%ECHO_QUEUE%' does not resolve to a value") as info:
        LocalRunner(sample_app.app, settings=settings, host_json={})
    assert "Functions.echo" in str(info.value)


def test_missing_connection_setting_is_reported_like_the_host() -> None:
    settings = {k: v for k, v in SETTINGS.items() if k != "TestStorage"}
    with pytest.raises(RunnerError, match="Storage account connection string 'TestStorage' does not exist"):
        LocalRunner(sample_app.app, settings=settings, host_json={})


def test_identity_based_connection_is_rejected_with_a_way_out() -> None:
    settings = {k: v for k, v in SETTINGS.items() if k != "TestStorage"}
    settings["TestStorage__queueServiceUri"] = "https://acct.queue.core.windows.net"
    with pytest.raises(RunnerError, match="identity-based"):
        LocalRunner(sample_app.app, settings=settings, host_json={})


def test_development_storage_points_at_the_emulator_default_port() -> None:
    runner = LocalRunner(sample_app.app, settings=SETTINGS, host_json={})
    work = next(f for f in runner.functions if f.name == "work")
    assert work.trigger.connection_string == DEVELOPMENT_STORAGE_CONNECTION  # type: ignore[union-attr]
    assert "127.0.0.1:10001" in DEVELOPMENT_STORAGE_CONNECTION
    assert "AccountKey=***" in mask_connection_string(DEVELOPMENT_STORAGE_CONNECTION)
    assert "Eby8" not in mask_connection_string(DEVELOPMENT_STORAGE_CONNECTION)


def test_output_declared_without_func_out_is_refused() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="in-q", connection="S")
    @app.queue_output(arg_name="out", queue_name="out-q", connection="S")
    def plain(msg: func.QueueMessage, out: str) -> None:  # passes get_functions(), fails in the worker
        pass

    with pytest.raises(FunctionLoadError, match=r"not a subclass of azure\.functions\.Out"):
        LocalRunner(app, settings={"S": "UseDevelopmentStorage=true"}, host_json={})


def test_output_of_an_unsupported_type_is_refused() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="in-q", connection="S")
    @app.queue_output(arg_name="out", queue_name="out-q", connection="S")
    def typed(msg: func.QueueMessage, out: func.Out[dict[str, str]]) -> None:
        pass

    with pytest.raises(FunctionLoadError, match=r"use func.Out\[str\] or func.Out\[list\[str\]\]"):
        LocalRunner(app, settings={"S": "UseDevelopmentStorage=true"}, host_json={})


def test_output_values_must_match_the_annotation() -> None:
    one = QueueOutputBinding(param="out", queue_name="q", connection="S", connection_string="x")
    many = QueueOutputBinding(param="out", queue_name="q", connection="S", connection_string="x", many=True)
    assert one.payloads("é") == ["é".encode()]
    assert many.payloads(["a", "b"]) == [b"a", b"b"]
    assert one.payloads(None) == []
    with pytest.raises(TypeError, match=r"func.Out\[str\]"):
        one.payloads(["a"])
    with pytest.raises(TypeError, match="takes a list"):
        many.payloads("a")
    with pytest.raises(TypeError, match="cannot send a int"):
        many.payloads(["a", 1])


def test_host_json_queue_defaults_and_limits() -> None:
    assert QueuesOptions.from_host_json({}) == QueuesOptions(
        batch_size=16,
        new_batch_threshold=8,
        max_polling_interval=60.0,
        visibility_timeout=0.0,
        max_dequeue_count=5,
        message_encoding="base64",
    )
    opts = QueuesOptions.from_host_json(
        {
            "Extensions": {
                "Queues": {
                    "BatchSize": 4,
                    "maxPollingInterval": 2000,
                    "visibilityTimeout": "00:00:30",
                    "messageEncoding": "None",
                }
            }
        }
    )
    assert (
        opts.batch_size,
        opts.new_batch_threshold,
        opts.max_polling_interval,
        opts.visibility_timeout,
        opts.message_encoding,
    ) == (4, 2, 2.0, 30.0, "none")
    with pytest.raises(RunnerError, match="batchSize"):
        QueuesOptions.from_host_json({"extensions": {"queues": {"batchSize": 33}}})
    with pytest.raises(RunnerError, match="100 ms"):
        QueuesOptions.from_host_json({"extensions": {"queues": {"maxPollingInterval": "00:00:00.050"}}})
    with pytest.raises(RunnerError, match="TimeSpan"):
        QueuesOptions.from_host_json({"extensions": {"queues": {"visibilityTimeout": 30}}})


def test_ncrontab_has_seconds_first_and_timespans_are_intervals() -> None:
    at = datetime(2030, 1, 1, 12, 3, 7, tzinfo=UTC)
    assert parse_schedule("0 */5 * * * *").next_after(at) == datetime(2030, 1, 1, 12, 5, 0, tzinfo=UTC)
    assert parse_schedule("30 0 9 * * Mon-Fri").next_after(at) == datetime(2030, 1, 2, 9, 0, 30, tzinfo=UTC)
    assert parse_schedule("01:30:00").next_after(at) == datetime(2030, 1, 1, 13, 33, 7, tzinfo=UTC)
    with pytest.raises(RunnerError, match="NCRONTAB"):
        parse_schedule("every five minutes")


def test_local_settings_values_and_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {"FUNCTIONS_WORKER_RUNTIME": "python", "VNB_TEST_FLAG": True, "VNB_TEST_N": 3},
            }
        )
    )
    values = load_local_settings(path)
    assert values == {"FUNCTIONS_WORKER_RUNTIME": "python", "VNB_TEST_FLAG": "true", "VNB_TEST_N": "3"}
    monkeypatch.setenv("VNB_TEST_N", "before")
    monkeypatch.delenv("VNB_TEST_FLAG", raising=False)
    with exported_settings(values):
        assert os.environ["VNB_TEST_FLAG"] == "true"
        assert os.environ["VNB_TEST_N"] == "3"
    assert "VNB_TEST_FLAG" not in os.environ
    assert os.environ["VNB_TEST_N"] == "before"

    path.write_text(json.dumps({"IsEncrypted": True, "Values": {}}))
    with pytest.raises(RunnerError, match="encrypted"):
        load_local_settings(path)


def test_typing_list_output_takes_a_list() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="in-q", connection="S")
    @app.queue_output(arg_name="out", queue_name="out-q", connection="S")
    def fan_out(msg: func.QueueMessage, out: func.Out[typing.List[str]]) -> None:  # noqa: UP006
        pass

    runner = LocalRunner(app, settings={"S": "UseDevelopmentStorage=true"}, host_json={})
    (binding,) = runner.functions[0].outputs
    assert binding.many
    assert binding.annotation == "func.Out[list[str]]"
