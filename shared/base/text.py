"""Strings from outside, made safe to echo: valid UTF-8 and bounded (pure).

JSON allows escapes UTF-8 cannot encode (a lone surrogate such as ``"\\ud800"``), so a string a
producer sent may not be writable to an event, a Table entity or a log line; and it may be of
any length. Every such string goes through :func:`clean` before it is echoed.
"""

from __future__ import annotations

import json
from typing import Final

ELLIPSIS: Final = "…"


def clean(text: str, limit: int = 1024) -> str:
    """``text`` with every code point UTF-8 cannot encode written as its ``\\uXXXX`` escape, cut
    to at most ``limit`` characters (the cut marked with ``…``)."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= limit else safe[: max(limit - 1, 0)] + ELLIPSIS


def raw_value(value: object, limit: int = 256) -> str:
    """Any JSON value a producer sent, as escaped ASCII JSON text at most ``limit`` characters
    long: how an invalid ``id`` or ``correlationId`` is carried without ever becoming a key."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):  # not a JSON value (a caller's own object): its repr, escaped
        text = ascii(value)
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "..."


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
