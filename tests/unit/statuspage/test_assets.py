"""The status page's files as HTTP answers: types, caching, CSP, and nothing else served."""

from __future__ import annotations

import re

import pytest

from shared.statuspage.assets import ASSETS, CSP, asset, names, page


def test_the_page_links_its_assets_under_the_route_it_was_asked_for() -> None:
    answer = page("/api/status/")
    text = answer.body.decode()
    assert answer.status == 200
    assert answer.content_type == "text/html"
    assert '<link rel="stylesheet" href="/api/status/assets/style.css">' in text
    assert '<script type="module" src="/api/status/assets/app.js"></script>' in text
    # Never kept by a cache: it may have been fetched with ?code=<key>.
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_a_path_cannot_inject_markup_into_the_page() -> None:
    text = page('/api/"><script>alert(1)</script>').body.decode()
    assert "<script>alert" not in text


def test_the_policy_allows_only_the_apps_own_origin() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    for loose in ("unsafe-inline", "unsafe-eval", "http", "*"):
        assert loose not in CSP


def test_no_inline_script_style_or_third_party_url_in_any_file() -> None:
    for path in ASSETS.iterdir():
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path.name
        assert "style=" not in text, path.name  # inline style attributes are blocked by the CSP
        assert not re.search(r"\son[a-z]+=", text), path.name  # inline handlers
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text.replace("https?:", "")), path.name


@pytest.mark.parametrize(("name", "content_type"), [("app.js", "text/javascript"), ("style.css", "text/css")])
def test_assets_have_their_type_and_are_revalidated(name: str, content_type: str) -> None:
    answer = asset(name)
    assert (answer.status, answer.content_type) == (200, content_type)
    assert answer.body == (ASSETS / name).read_bytes()
    assert answer.headers["Cache-Control"] == "no-cache"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    again = asset(name, if_none_match=answer.headers["ETag"])
    assert (again.status, again.body) == (304, b"")
    assert asset(name, if_none_match='"other"').status == 200


@pytest.mark.parametrize("name", ["index.html", "../assets.py", "APP.JS", "app.js.map", "nope.js", "", "__init__.py"])
def test_nothing_but_the_shipped_assets_is_served(name: str) -> None:
    answer = asset(name)
    assert answer.status == 404
    assert answer.content_type == "text/plain"


def test_every_module_the_page_imports_is_served() -> None:
    served = set(names())
    for name in served:
        for imported in re.findall(r'from "\./([^"]+)"', (ASSETS / name).read_text()):
            assert imported in served, (name, imported)
