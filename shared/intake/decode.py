"""A queue message's bytes → a JSON object: plain or base64 (line-wrapped too), a byte-order mark
stripped, or field errors saying what it is instead (pure)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from shared.base.errors import FieldError

_ASCII_WHITESPACE = re.compile(r"[ \t\n\r\f\v]+")


_BOM = "\ufeff"


def decode_body(body: bytes) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """Bytes of a queue message → a JSON object, or the reason it is not one.

    Producers differ: the az CLI and the Python SDK send plain text by default, Storage
    Explorer and older SDKs send base64. Both are accepted, so no producer's message ends up
    in the poison queue for its encoding alone.
    """
    if len(body) > 64 * 1024:
        return None, [FieldError("$body", f"message is {len(body)} bytes; at most 64 KiB")]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, [FieldError("$body", f"not UTF-8 text (byte {e.start}: {e.reason})")]
    # A byte-order mark (U+FEFF, what editors and .NET's UTF8Encoding(true) write first) is
    # dropped, before and inside base64: RFC 8259 section 8.1 lets a parser ignore it, and
    # without this a base64 body with one failed as "not JSON" naming neither.
    stripped = text.strip().removeprefix(_BOM).strip()
    if stripped and stripped[0] not in '{["':  # digits too: base64 of a BOM starts "77u/"
        # Base64 wrapped into lines is still base64: MIME writes lines of at most 76 characters
        # (RFC 2045 section 6.8), as GNU `base64` does by default and Python's base64.encodebytes.
        # ASCII whitespace is dropped first; anything else outside the alphabet still fails.
        compact = _ASCII_WHITESPACE.sub("", stripped)
        try:
            decoded = base64.b64decode(compact, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            pass
        else:
            decoded = decoded.lstrip().removeprefix(_BOM)
            if decoded.lstrip()[:1] in ("{", "["):  # an array then says "expected a JSON object"
                stripped = decoded
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError as e:
        # str(e) is CPython's own "<msg>: line L column C (char N)"; msg may end in "at" itself
        # ("Unterminated string starting at"), so "<msg> at line" read "at at line".
        return None, [FieldError("$body", f"not JSON: {e}")]
    except RecursionError:
        # CPython 3.13's json raises this past ~10 000 levels of nesting: 10 KB of "[" is
        # enough. Bad input, not a transient failure: it must not be retried into the poison queue.
        return None, [FieldError("$body", "not usable JSON: nested too deeply")]
    except ValueError:
        # CPython caps int conversion at 4,300 digits (sys.int_info.default_max_str_digits):
        # a bare number that long is bad input too, not a reason to poison the message.
        return None, [FieldError("$body", "not usable JSON: a number has more than 4300 digits")]
    if not isinstance(value, dict):
        return None, [FieldError("$body", f"expected a JSON object, got {type(value).__name__}")]
    return value, []
