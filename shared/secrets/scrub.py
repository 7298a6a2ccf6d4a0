"""Env values kept out of the copies of a request the app writes elsewhere (pure).

A request's ``env`` is for non-secret configuration, yet people paste tokens into it. So the
echo of the original body in ``request.rejected``/``request.deadlettered`` and the request the
Job carries in its annotations keep every env *name* with the value replaced by ``***``; the
value itself lives only in the container's env (the Job's pod template), where it has to be.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared.intake.decode import decode_body
from shared.intake.deferral import ENVELOPE

MASK = "***"


def without_env_values(request: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a request (or of a deferral envelope around one) with env values masked."""
    out = dict(request)
    env = out.get("env")
    if isinstance(env, dict):
        out["env"] = dict.fromkeys(env, MASK)
    inner = out.get("request")
    if ENVELOPE in out and isinstance(inner, dict):
        out["request"] = without_env_values(inner)
    return out


def scrub_body(body: bytes) -> bytes:
    """The message body with env values masked, as compact JSON; unchanged when it is not a JSON
    object (there is no env to find) or has no env."""
    data, _ = decode_body(body)
    if data is None:
        return body
    scrubbed = without_env_values(data)
    if scrubbed == data:
        return body
    text = json.dumps(scrubbed, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate JSON allowed ("\ud800"): keep it escaped, as sent
        return json.dumps(scrubbed, separators=(",", ":")).encode()


def env_restored(request: Mapping[str, Any], container_env: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The request carried on a Job (``without_env_values``) with its env values taken back from
    the Job's container env, where the renderer wrote each as ``literal_env_value`` (``$`` doubled)."""
    out = dict(request)
    env = out.get("env")
    if isinstance(env, dict):
        values = {e.get("name"): e.get("value") for e in container_env if isinstance(e.get("value"), str)}
        out["env"] = {k: str(values[k]).replace("$$", "$") if k in values else v for k, v in env.items()}
    return out
