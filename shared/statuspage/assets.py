"""The status page's files as HTTP answers (pure: reads only the files shipped beside it).

``page(path)`` is the HTML (``GET /api/status``), ``asset(name, etag)`` one JS module or the
stylesheet (``GET /api/status/assets/{name}``). Both carry a strict Content-Security-Policy: the
page runs only its own scripts and styles (no inline script, no CDN) and talks only to its own
origin. Assets are revalidated on every use (``no-cache`` + a strong ``ETag``, 304 when
unchanged): JS modules import each other by plain relative URLs, which cannot carry a version,
so a deploy is seen at the next load without stale modules mixing with new ones.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ASSETS = Path(__file__).with_name("assets")

# default-src 'self' covers scripts, styles, images and fetch (connect-src): the page's own
# origin only. frame-ancestors/form-action/base-uri are not covered by default-src (CSP Level 3,
# w3.org/TR/CSP3 "default-src" fallback list), so they are closed explicitly: no framing
# (clickjacking), no <base> rewriting the asset URLs, no form posting elsewhere.
CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_NAME = re.compile(r"[a-z][a-z0-9-]{0,40}\.(?:js|css|svg)")


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: ``status``, ``body`` (bytes), ``content_type`` (without charset) and headers."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def _security() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        # The page's URL may carry ?code=<function key> on first load: never send it on in a
        # Referer (to the trace viewer the page links to, or anywhere else).
        "Referrer-Policy": "no-referrer",
    }


@cache
def _read(name: str) -> tuple[bytes, str]:
    body = (ASSETS / name).read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def names() -> list[str]:
    """The asset names served (every JS, CSS and SVG file shipped in ``assets/``, index.html aside)."""
    return sorted(p.name for p in ASSETS.iterdir() if _NAME.fullmatch(p.name))


def page(path: str) -> Answer:
    """The HTML page; ``path`` is the request's URL path (``/api/status``), from which the assets'
    URLs are made (``<path>/assets/<name>``) so the page works under any route prefix."""
    base = html.escape(path.rstrip("/") + "/assets/", quote=True)
    text = _read("index.html")[0].decode("utf-8").replace("{{assets}}", base)
    # The HTML holds no data (the browser fetches it with the key), but it is never cached: a
    # shared cache must not keep a page fetched with ?code=.
    return Answer(200, text.encode("utf-8"), "text/html", {**_security(), "Cache-Control": "no-store"})


def asset(name: str, *, if_none_match: str | None = None) -> Answer:
    """One asset, 304 when ``if_none_match`` holds its ETag, 404 (plain text) for any other name."""
    if not _NAME.fullmatch(name) or name not in names():
        return Answer(404, b"", "text/plain", _security())  # empty, like the host's own 404
    body, etag = _read(name)
    headers = {**_security(), "Cache-Control": "no-cache", "ETag": etag}
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        return Answer(304, b"", _TYPES[Path(name).suffix], headers)
    return Answer(200, body, _TYPES[Path(name).suffix], headers)
