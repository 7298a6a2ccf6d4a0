"""ARM long-running operations: ``Azure-AsyncOperation``/``Location`` headers, the operation status
document and ``operationresults``, and the clock that finishes due operations and runs their hooks."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devtools.standins.arm.catalog import (
    ArmError,
)
from devtools.standins.arm.common import (
    _Ctx,
    _Result,
    _utcnow_iso,
)


@dataclass
class _Op:
    id: str
    namespace: str
    location: str
    kind: str  # create / update / delete
    resource_id: str
    done_at: float
    complete: Callable[[], tuple[dict[str, Any] | None, list[Callable[[], None]]]]
    started: str = field(default_factory=_utcnow_iso)
    status: str = "InProgress"
    ended: str | None = None
    finalizing: bool = False
    error: dict[str, Any] | None = None


class Operations:
    """The LRO table (``_ops``) and its clock; resource providers start operations with ``_new_op``."""

    # ------------------------------------------------------------------ LRO clock
    def _new_op(
        self,
        namespace: str,
        kind: str,
        resource_id: str,
        seconds: float,
        complete: Callable[[], tuple[dict[str, Any] | None, list[Callable[[], None]]]],
    ) -> _Op:
        op = _Op(
            id=str(uuid.uuid4()),
            namespace=namespace,
            location=self.location,
            kind=kind,
            resource_id=resource_id,
            done_at=time.monotonic() + max(0.0, seconds),
            complete=complete,
        )
        self._ops[op.id] = op
        return op

    def _advance(self) -> None:
        """Finish due LROs. Hooks run outside the lock, before the operation reports its final status,
        so a poller that sees ``Succeeded`` knows ``on_virtual_node_enabled`` has already run."""
        finished: list[tuple[_Op, dict[str, Any] | None, list[Callable[[], None]]]] = []
        now = time.monotonic()
        with self._lock:
            for p in self._providers.values():
                if p["state"] == "Registering" and p["ready_at"] is not None and now >= p["ready_at"]:
                    p["state"] = "Registered"
            due = sorted(
                (o for o in self._ops.values() if o.status == "InProgress" and not o.finalizing and o.done_at <= now),
                key=lambda o: o.done_at,
            )
            for op in due:
                op.finalizing = True
                try:
                    error, op_hooks = op.complete()
                except ArmError as exc:
                    error, op_hooks = exc.body()["error"], []
                finished.append((op, error, op_hooks))
        for _, _, op_hooks in finished:
            for hook in op_hooks:
                try:
                    hook()
                except BaseException as exc:  # recorded for assertions, never breaks the server
                    self.hook_errors.append(exc)
        if finished:
            with self._lock:
                for op, error, _ in finished:
                    op.status = "Failed" if error else "Succeeded"
                    op.error = error
                    op.ended = _utcnow_iso()

    def _lro_headers(self, op: _Op, api_version: str | None) -> dict[str, str]:
        base = f"{self.url}/subscriptions/{self.subscription_id}/providers/{op.namespace}/locations/{op.location}"
        q = f"?api-version={api_version or '2017-08-31'}"
        return {
            "Azure-AsyncOperation": f"{base}/operations/{op.id}{q}",
            "Location": f"{base}/operationresults/{op.id}{q}",
            "retry-after-ms": str(self.poll_interval_ms),
        }

    # ------------------------------------------------------------------ operations
    def _op(self, ctx: _Ctx) -> _Op:
        op = self._ops.get(ctx.g["op"])
        if op is None or op.namespace.lower() != ctx.g["ns"].lower():
            raise ArmError(404, "NotFound", f"Operation {ctx.g['op']} was not found.")
        return op

    def _op_status(self, ctx: _Ctx) -> _Result:
        with self._lock:
            op = self._op(ctx)
            body: dict[str, Any] = {
                "id": ctx.path,
                "name": op.id,
                "status": op.status,
                "startTime": op.started,
            }
            if op.ended:
                body["endTime"] = op.ended
            if op.error:
                body["error"] = op.error
            headers = {"retry-after-ms": str(self.poll_interval_ms)} if op.status == "InProgress" else {}
            return 200, headers, body

    def _op_result(self, ctx: _Ctx) -> _Result:
        with self._lock:
            op = self._op(ctx)
            if op.status == "InProgress":
                return (
                    202,
                    {
                        "Location": f"{self.url}{ctx.path}?api-version={ctx.params.get('api-version')}",
                        "retry-after-ms": str(self.poll_interval_ms),
                    },
                    None,
                )
            if op.error:
                raise ArmError(400, op.error.get("code", "OperationFailed"), op.error.get("message", ""))
            found = self._find(op.resource_id)
            return (200, {}, copy.deepcopy(found)) if found is not None and op.kind != "delete" else (204, {}, None)
