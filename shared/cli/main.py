"""``python -m shared.cli``: render, submit and follow work from a terminal.

Settings come from the environment, falling back to ``local.settings.json`` (Core Tools'
file) in the current directory, so the CLI sees the same app settings as ``func start``.
Exit codes: 0 ok, 2 invalid input (field errors on stderr, or a file that cannot be read),
1 anything else (e.g. the queue service cannot be reached). Expected failures print one line
starting with ``error:``, never a traceback.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from shared.cli import api as cli_api
from shared.config.settings import Settings, SettingsError
from shared.intake.decode import decode_body
from shared.intake.request import RequestInvalid, parse_request

EXIT_INVALID = 2
EXIT_FAILED = 1
CLI_RETRIES = 2
"""Retries of a queue call from the CLI (1 s, then a few seconds apart), not the SDK's 15 s, 18 s, 24 s."""


class CliError(Exception):
    """A failure the user can fix; ``main`` prints it as one line and exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_INVALID) -> None:
        super().__init__(message)
        self.code = code


def _json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise CliError(f"{what} {path} is not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    except json.JSONDecodeError as e:
        raise CliError(f"{what} {path} is not valid JSON ({_json_problem(e)}): fix the file") from None
    except OSError as e:
        raise CliError(f"cannot read {what} {path}: {e.strerror}") from None


def _json_problem(e: json.JSONDecodeError) -> str:
    return str(e)  # "Unterminated string starting at: line 1 column 22 (char 21)"


def load_environment(settings_file: str | None) -> dict[str, str]:
    """App settings as the host would see them: local.settings.json Values under os.environ."""
    values: dict[str, str] = {}
    path = Path(settings_file or "local.settings.json")
    if path.is_file():
        raw = _json_file(path, "settings file")
        if not isinstance(raw, dict) or not isinstance(raw.get("Values", {}), dict):
            raise CliError(f'settings file {path} is not a Core Tools settings file: expected {{"Values": {{...}}}}')
        values.update({k: str(v) for k, v in (raw.get("Values") or {}).items()})
    elif settings_file:
        raise CliError(
            f"settings file {path} not found: give the path of a local.settings.json, or leave --settings out"
        )
    values.update(os.environ)
    return values


def message_encoding(host_json: str | Path = "host.json") -> str:
    """The queue trigger's messageEncoding from host.json (the host's default is base64)."""
    path = Path(host_json)
    if not path.is_file():
        return "base64"
    config = _json_file(path, "host.json")
    if not isinstance(config, dict):
        raise CliError(f"host.json {path} is not a JSON object")
    return str(config.get("extensions", {}).get("queues", {}).get("messageEncoding", "base64")).lower()


def encode_for_trigger(text: str, encoding: str) -> str:
    return base64.b64encode(text.encode()).decode() if encoding == "base64" else text


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as e:
        raise CliError(
            f"cannot read {source}: {e.strerror}; give the path of a request JSON file, or - for stdin"
        ) from None


def _name(source: str) -> str:
    return "stdin" if source == "-" else source


def _print_errors(errors: Iterable[Any], stream: TextIO) -> None:
    for e in errors:
        print(f"{e.field}: {e.message}", file=stream)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(load_environment(args.settings))


def cmd_render(args: argparse.Namespace) -> int:
    from shared.job.render import JobMeta, build_job, resources_for

    settings = _settings(args)
    data, errors = decode_body(_read(args.file))
    if data is None:
        raise CliError(f"{_name(args.file)} is not a JSON request: {errors[0].message}; fix the file")
    try:
        request = parse_request(data, settings=settings)
    except RequestInvalid as e:
        _print_errors(e.errors, sys.stderr)
        return EXIT_INVALID
    key = request.id or args.message_id
    manifest = build_job(request, JobMeta(key=key, message_id=args.message_id, enqueued_at=None), settings=settings)
    json.dump(manifest, sys.stdout, indent=2)
    print()
    # stderr, so stdout stays a manifest for `kubectl apply -f -`; the Job's
    # vnode-batch.io/resources annotation records the same.
    for line in resources_for(request, settings).describe():
        print(f"applied {line}", file=sys.stderr)
    return 0


def _requests_from(source: str) -> list[bytes]:
    """One request per file; a JSON array or JSON lines give several."""
    raw = _read(source)
    try:
        text = raw.decode("utf-8", errors="strict").strip()
    except UnicodeDecodeError as e:
        raise CliError(f"{source} is not UTF-8 text (byte {e.start}): save it as UTF-8 JSON") from None
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise CliError(f"{source} is not valid JSON ({_json_problem(e)}): fix the file") from None
        return [json.dumps(item).encode() for item in items]
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and all(line.lstrip().startswith("{") and line.rstrip().endswith("}") for line in lines):
        return [line.encode() for line in lines]
    return [raw]


def cmd_submit(args: argparse.Namespace) -> int:
    from shared.adapters.queues import Queues

    bodies = _requests_from(args.file)
    if args.wait:  # through the HTTP API, then follow each request to its end
        from shared.cli.api import submit_and_wait

        return submit_and_wait(args, bodies)
    settings = _settings(args)
    if not args.no_validate:
        bad = 0
        for index, body in enumerate(bodies):
            data, errors = decode_body(body)
            if data is None and len(bodies) == 1:
                raise CliError(f"{_name(args.file)} is not a JSON request: {errors[0].message}; fix the file")
            try:
                if data is not None:
                    parse_request(data, settings=settings)
            except RequestInvalid as e:
                errors = e.errors
            if errors:
                bad += 1
                print(f"request {index}:", file=sys.stderr)
                _print_errors(errors, sys.stderr)
        if bad:
            print(
                f"{bad} invalid request(s): nothing sent (use --no-validate to send anyway and get rejection events)",
                file=sys.stderr,
            )
            return EXIT_INVALID
    encoding = message_encoding(args.host_json)
    queues = Queues(settings, retry_total=CLI_RETRIES)
    with _queue_service(queues):
        queues.ensure(settings.requests_queue)
        for body in bodies:
            message_id = queues.send(settings.requests_queue, encode_for_trigger(body.decode(), encoding))
            print(f"queued {message_id} on {settings.requests_queue}")
    return 0


@contextmanager
def _queue_service(queues: Any) -> Iterator[None]:
    """Turn 'cannot reach the queue service' into one line naming the endpoint (exit 1)."""
    from azure.core.exceptions import AzureError

    from shared.adapters.queues import QueueSendError

    try:
        yield
    except (AzureError, QueueSendError) as e:
        reason = (str(e).splitlines() or ["no answer"])[0][:300]
        raise CliError(
            f"cannot reach the queue service at {queues.service().url}: {reason}. Start Azurite locally "
            "(see README), or check AzureWebJobsStorage in local.settings.json / --settings",
            EXIT_FAILED,
        ) from None


def format_event(event: Mapping[str, Any]) -> str:
    """One line a person can read: time, outcome, key, job, duration, reason."""
    data = event.get("data") or {}
    kind = str(event.get("type", "?")).removeprefix("io.vnodebatch.")
    parts = [str(event.get("time", "")), f"{kind:<20}", f"key={data.get('requestKey') or '-'}"]
    if data.get("jobName"):
        parts.append(f"job={data['jobName']}")
    if data.get("durationSeconds") is not None:
        parts.append(f"took={data['durationSeconds']}s")
    if data.get("exitCode") is not None:
        parts.append(f"exit={data['exitCode']}")
    if data.get("reason"):
        parts.append(f"reason={data['reason']}")
    cost = data.get("cost")
    if isinstance(cost, Mapping):
        retried = (cost.get("failedAttempts") or {}).get("amount") or 0
        parts.append(
            f"cost={cost.get('amount', 0):.6f} {cost.get('currency', '')}"
            f" ({cost.get('vcpuSeconds', 0):g} vCPU-s, {cost.get('gbSeconds', 0):g} GB-s"
            + (f", retries {retried:.6f}" if retried else "")
            + ")"
        )
    if data.get("errors"):
        first = data["errors"][0]
        more = f" (+{len(data['errors']) - 1} more)" if len(data["errors"]) > 1 else ""
        parts.append(f"error={first.get('field')}: {first.get('message')}{more}")
    if data.get("detail"):
        parts.append(f"detail={data['detail'][:120]}")
    if data.get("correlationId"):
        parts.append(f"correlation={data['correlationId']}")
    return "  ".join(parts)


def cmd_events(args: argparse.Namespace) -> int:
    from shared.adapters.queues import Queues

    settings = _settings(args)
    queues = Queues(settings, retry_total=CLI_RETRIES)
    with _queue_service(queues):
        return _read_events(args, settings, queues)


def _read_events(args: argparse.Namespace, settings: Settings, queues: Any) -> int:
    queues.ensure(settings.events_queue)
    emit: Callable[[str], None] = print
    seen = 0
    deadline = time.monotonic() + args.timeout if args.timeout else None
    while True:
        got = 0
        if args.peek:
            texts = queues.peek(settings.events_queue)
            for text in texts:
                emit(_render_event(text, as_json=args.json))
            return 0
        batch = min(32, args.count - seen) if args.count else 32
        for message in queues.receive(settings.events_queue, max_messages=batch, visibility_timeout=30):
            emit(_render_event(message.body, as_json=args.json))
            queues.delete(settings.events_queue, message)
            got += 1
        seen += got
        sys.stdout.flush()
        if args.count and seen >= args.count:
            return 0
        if not args.follow and got == 0:
            return 0
        if deadline is not None and time.monotonic() > deadline:
            return 0
        if got == 0:
            time.sleep(0.5)


def _render_event(text: str, *, as_json: bool) -> str:
    if as_json:
        return text
    try:
        return format_event(json.loads(text))
    except (ValueError, AttributeError):
        return f"(not an event) {text[:200]}"


def _aks_settings(args: argparse.Namespace) -> Settings | None:
    """Settings for plan/bootstrap; None (reported) when they are invalid or not aks mode."""
    try:
        settings = _settings(args)
    except SettingsError as e:
        print(str(e), file=sys.stderr)
        return None
    if settings.cluster_mode != "aks":
        print("VNB_CLUSTER_MODE is kubeconfig: the cluster is yours, there is nothing to bootstrap", file=sys.stderr)
        return None
    return settings


def cmd_schedules(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from shared.schedules.definitions import SchedulesError
    from shared.schedules.enqueue import describe_schedules

    settings = _settings(args)
    try:
        rows = describe_schedules(settings, datetime.now(UTC))
    except SchedulesError as e:
        print(str(e), file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return 0
    if not rows:
        print(f"no schedules in {settings.schedules_file}")
        return 0
    for row in rows:
        state = "enabled " if row.enabled else "disabled"
        when = row.next_run.isoformat() if row.next_run else "-"
        print(
            f"{row.name:<24} {state} {row.cron!r:<18} {row.time_zone:<18} next {when}  id {row.next_request_id or '-'}  {row.image}"
        )
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from shared.cli.bootstrap import cli_plan

    settings = _aks_settings(args)
    return EXIT_INVALID if settings is None else cli_plan(settings, sys.stdout, sys.stderr)


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from shared.cli.bootstrap import cli_bootstrap

    settings = _aks_settings(args)
    if settings is None:
        return EXIT_INVALID
    return cli_bootstrap(settings, sys.stdout, sys.stderr, timeout=args.timeout, poll_seconds=args.poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.cli", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--settings", help="local.settings.json to read (default: ./local.settings.json if present)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("render", help="print the Job manifest a request becomes (no cluster needed)")
    p.add_argument("file", help="request JSON file, or - for stdin")
    p.add_argument(
        "--message-id", default="local-render", help="queue message id to assume (the key when id is absent)"
    )
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("submit", help="validate and enqueue request(s) on the requests queue")
    p.add_argument("file", help="request JSON file (object, array, or JSON lines), or - for stdin")
    p.add_argument("--host-json", default="host.json", help="host.json whose messageEncoding the trigger uses")
    p.add_argument("--no-validate", action="store_true", help="send even if invalid (to see the rejection event)")
    p.add_argument(
        "--wait", action="store_true", help="submit through the HTTP API and follow until done (needs VNB_API_URL)"
    )
    p.add_argument("--timeout", type=float, default=0, help="with --wait: give up after this many seconds")
    cli_api.add_api_options(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("events", help="read outcome events from the events queue (consumes them)")
    p.add_argument("--follow", "-f", action="store_true", help="keep waiting for new events")
    p.add_argument("--json", action="store_true", help="print the raw CloudEvents JSON, one per line")
    p.add_argument("--peek", action="store_true", help="show up to 32 events without consuming them")
    p.add_argument("--count", type=int, default=0, help="stop after this many events")
    p.add_argument("--timeout", type=float, default=0, help="stop following after this many seconds")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser(
        "plan", help="what-if of the AKS bootstrap: what exists, what would be created and why (no writes)"
    )
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("schedules", help="list the periodic batches and their next run (validates the file)")
    p.add_argument("--json", action="store_true", help="machine-readable rows")
    p.set_defaults(func=cmd_schedules)

    p = sub.add_parser("bootstrap", help="build the AKS cluster with the virtual node now and wait until it is Ready")
    p.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds (default 1800)")
    p.add_argument("--poll", type=float, default=10, help="seconds between checks while waiting (default 10)")
    p.set_defaults(func=cmd_bootstrap)

    cli_api.register(sub)

    from shared.cli import cluster as cli_cluster
    from shared.cli import cost as cli_cost
    from shared.cli import top as cli_top

    cli_cluster.register(sub, _aks_settings)
    cli_cost.register(sub, _settings)
    cli_top.register(sub)

    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except SettingsError as e:
        print(str(e), file=sys.stderr)
        return 1
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    return result


if __name__ == "__main__":
    sys.exit(main())
