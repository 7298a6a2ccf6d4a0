"""The status page end to end: headless Chromium (Debian's ``chromium``, driven by Playwright)
against the local host running the app on the real worker runtime, Azurite and the Kubernetes
stand-in, with requests in every kind of state (``devtools/statuspage_scene.py``).

What a user would notice: the page needs a key and says how to pass one; it lists requests by
state and team and filters them; an id opens that request's timeline (a waiting request shows
its position); the back button restores the previous view; the keyboard alone reaches the
filters and a request; it refreshes itself; it fits a narrow screen; the browser reports no
Content-Security-Policy violation (no inline script, nothing from another origin).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from devtools.azurite import Azurite
from devtools.host import LocalHost
from devtools.standins.kube.apiserver import KubeStandIn
from devtools.statuspage_scene import KEYS, Scene, scene_settings
from devtools.statuspage_shot import CHROMIUM_ARGS
from tests.conftest import BASE_ENV, REPO, wait_for
from tests.integration.conftest import FAST_HOST

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("VNB_CHROMIUM", "/usr/bin/chromium")
IDS = {"nightly-report", "etl-load", "train-model", "render-frames", "render-more"}

if not Path(CHROMIUM).exists():
    # scripts/setup installs it (apt-get, as root); CI runs scripts/setup first, so there a
    # missing browser is a failure, never a silent skip.
    why = f"{CHROMIUM} is missing: run scripts/setup (apt-get install chromium) or set VNB_CHROMIUM"
    if os.environ.get("CI"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why, allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (requirements-dev.txt) is not installed")


TRACE_URL = "https://traces.example.test/trace/{traceId}"
"""VNB_TRACE_URL of the module's host: a request's page links to its trace with it."""
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def host(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHost]:
    """One host for the module, populated once (the scene takes seconds to reach its states)."""
    workdir = tmp_path_factory.mktemp("status-page")
    prefix = "s" + uuid.uuid4().hex[:8]
    with KubeStandIn(pod_start_seconds=0.02) as kube:
        env = {
            **BASE_ENV,
            "AzureWebJobsStorage": azurite.connection_string,
            "VNB_REQUESTS_QUEUE": f"{prefix}-requests",
            "VNB_EVENTS_QUEUE": f"{prefix}-events",
            "VNB_FOLLOWUP_QUEUE": f"{prefix}-followup",
            "VNB_LEDGER_TABLE": f"{prefix}ledger",
            "VNB_KUBECONFIG": str(kube.write_kubeconfig(workdir / "kubeconfig")),
            "VNB_RECONCILE_SCHEDULE": "*/1 * * * * *",
            "VNB_TRACE_URL": TRACE_URL,
            **scene_settings(workdir),
        }
        with LocalHost(REPO, settings=env, host_json=FAST_HOST, state_dir=workdir / "host") as started:
            started.function_keys.update(KEYS)
            Scene(started.http_url).populate()
            yield started


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # launch() starts Chromium on a fresh temporary user-data-dir of its own, removed at close.
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A tab in a new browser context (no storage shared with other tests) that records the
    browser's console errors."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    tab.errors = []

    def console(message: Any) -> None:
        # Chrome logs every 4xx a fetch gets: the API's answers the page handles (an unknown or
        # invalid id, an app without GET /api/summary) are not errors of the page. Anything else
        # is: a missing asset, a script error, a CSP refusal ("Refused to …").
        url = message.location.get("url", "")
        if message.type == "error" and not re.search(r"/api/(requests/[^/]+|summary)$", url):
            tab.errors.append(message.text)

    tab.on("console", console)
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    yield tab
    context.close()


def open_page(page: Any, host: LocalHost, who: str = "ops", view: str = "") -> Any:
    response = page.goto(f"{host.http_url}/api/status?code={KEYS[who]}{view}")
    assert response.status == 200
    page.wait_for_selector("#requests tbody a[data-key]")
    return response


def until(page: Any, expression: str, timeout: float = 20.0) -> None:
    """Wait for a JS expression to hold. (Playwright's wait_for_function evaluates its string
    with eval, which the page's CSP refuses, as it should; page.evaluate runs over CDP.)"""
    wait_for(lambda: page.evaluate(expression), what=expression, timeout=timeout)


def listed(page: Any) -> set[str]:
    return set(page.locator("#requests tbody a[data-key]").all_inner_texts())


def test_without_a_key_the_host_refuses_the_page(host: LocalHost, page: Any) -> None:
    assert requests.get(f"{host.http_url}/api/status", timeout=30).status_code == 401
    for url in (f"{host.http_url}/api/status", f"{host.http_url}/api/status?code=not-a-key"):
        with page.expect_response(lambda r: "/api/status" in r.url) as answer:
            # Chromium shows its own error page for an empty 401 (net::ERR_HTTP_RESPONSE_CODE_FAILURE).
            with pytest.raises(sync_api.Error, match="ERR_HTTP_RESPONSE_CODE_FAILURE"):
                page.goto(url)
        assert answer.value.status == 401


def test_with_a_key_it_shows_requests_capacity_cost_and_outcomes(host: LocalHost, page: Any) -> None:
    response = open_page(page, host)
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    # The key left the address bar (history, screenshots) and lives in this tab's sessionStorage.
    assert "code=" not in page.url
    until(page, "document.querySelectorAll('#requests tbody a[data-key]').length >= 5")
    assert listed(page) == IDS
    counts = page.locator("#state-counts").inner_text()
    for state in ("succeeded", "failed", "running", "waiting-for-capacity"):
        assert state in counts
    row = page.locator("#requests tbody tr", has=page.locator('a[data-key="render-more"]'))
    assert re.search(r"#1 of 1", row.inner_text())
    assert "team-b" in row.inner_text()
    # The cost chart has a bar per team that paid, named in its legend.
    assert page.locator("#cost svg.chart rect").count() >= 2
    assert set(page.locator("#cost .legend li").all_inner_texts()) >= {" team-a", " team-b"} or {
        t.strip() for t in page.locator("#cost .legend li").all_inner_texts()
    } == {"team-a", "team-b"}
    assert "etl-load" in page.locator("#events").inner_text()
    assert "nightly-report" in page.locator("#events").inner_text()
    # Gauges against the budget (GET /api/summary): 2 of 2 container groups, and a row per team.
    capacity = page.locator("#capacity")
    capacity.get_by_text("2 of 2").first.wait_for()
    assert page.get_by_label("Container groups in use").get_attribute("value") == "2"
    assert page.get_by_label("team-a: cores").count() == 1
    assert page.get_by_label("team-b: cores").count() == 1
    assert "1 waiting" in capacity.inner_text()
    assert page.errors == []  # no CSP violation, no script error


def test_filters_by_state_and_team(host: LocalHost, page: Any) -> None:
    open_page(page, host)
    page.get_by_label("State", exact=True).select_option("running")
    page.get_by_role("button", name="Apply filters").click()
    until(page, "location.hash === '#state=running'")
    until(page, "document.querySelectorAll('#requests tbody a[data-key]').length === 2")
    assert listed(page) == {"train-model", "render-frames"}
    page.get_by_label("State", exact=True).select_option("")
    page.get_by_label("Team", exact=True).select_option("team-b")
    page.get_by_role("button", name="Apply filters").click()
    until(page, "location.hash === '#team=team-b'")
    until(page, "document.querySelectorAll('#requests tbody a[data-key]').length === 3")
    assert listed(page) == {"etl-load", "render-frames", "render-more"}


def test_a_team_member_sees_only_its_team(host: LocalHost, page: Any) -> None:
    open_page(page, host, who="team-a")
    until(page, "document.querySelectorAll('#requests tbody a[data-key]').length === 2")
    assert listed(page) == {"nightly-report", "train-model"}


def test_search_by_id_opens_the_timeline_of_a_waiting_request_with_its_position(host: LocalHost, page: Any) -> None:
    open_page(page, host)
    page.get_by_label("Request id").fill("render-more")
    page.get_by_role("button", name="Open").click()
    detail = page.locator("#detail")
    detail.get_by_text("Position 1 of 1 waiting").wait_for()
    text = detail.inner_text()
    assert "waiting-for-capacity" in text
    assert "Why: waiting for capacity" in text
    assert "May start" in text
    until(page, "document.activeElement.id === 'detail-heading'")


def test_a_finished_requests_timeline_shows_its_outcome_and_cost(host: LocalHost, page: Any) -> None:
    open_page(page, host, view="#id=etl-load")
    detail = page.locator("#detail")
    detail.get_by_text("Reason: BackoffLimitExceeded").wait_for()
    text = detail.inner_text()
    assert re.search(r"Cost: \d+\.\d+ USD", text)
    for step in ("received", "submitted", "running", "failed"):
        assert step in text
    # An unknown id is said so, not a blank panel.
    page.get_by_label("Request id").fill("no-such-request")
    page.get_by_role("button", name="Open").click()
    page.get_by_text('No request "no-such-request"').wait_for()


def test_the_back_button_restores_the_previous_view(host: LocalHost, page: Any) -> None:
    open_page(page, host)
    page.get_by_label("State", exact=True).select_option("running")
    page.get_by_role("button", name="Apply filters").click()
    until(page, "document.querySelectorAll('#requests tbody a[data-key]').length === 2")
    page.locator('#requests a[data-key="train-model"]').click()
    page.locator("#detail").get_by_text("Request train-model").wait_for()
    page.go_back()
    until(page, "document.getElementById('detail').hidden")
    assert page.get_by_label("State", exact=True).input_value() == "running"
    assert listed(page) == {"train-model", "render-frames"}
    page.go_back()
    until(page, "document.querySelectorAll('#requests tbody a[data-key]').length === 5")
    assert page.get_by_label("State", exact=True).input_value() == ""


def test_the_keyboard_alone_reaches_the_filters_and_opens_a_request(host: LocalHost, page: Any) -> None:
    open_page(page, host)
    page.locator("body").focus()

    def tab_to(selector: str, limit: int = 40) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"document.activeElement === document.querySelector({selector!r})"):
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("#f-state")
    page.keyboard.press("ArrowDown")  # "received" … any state but "all"
    while page.get_by_label("State", exact=True).input_value() != "running":
        page.keyboard.press("ArrowDown")
    tab_to("#filters button[type=submit]")
    page.keyboard.press("Enter")
    until(page, "document.querySelectorAll('#requests tbody a[data-key]').length === 2")
    tab_to('#requests a[data-key="render-frames"]')
    page.keyboard.press("Enter")
    page.locator("#detail").get_by_text("Request render-frames").wait_for()
    until(page, "document.activeElement.id === 'detail-heading'")


def test_it_refreshes_itself_without_reloading(host: LocalHost, page: Any) -> None:
    open_page(page, host)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    Scene(host.http_url).submit("team-a", {"id": "late-arrival", "command": ["sh", "-c", "sleep 1"]})
    page.locator('#requests a[data-key="late-arrival"]').wait_for(timeout=30_000)
    assert navigations == []


def test_it_fits_a_narrow_screen(host: LocalHost, page: Any) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    open_page(page, host)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page.get_by_label("Request id").is_visible()


def test_a_key_revoked_while_the_page_is_open_is_explained(host: LocalHost, page: Any) -> None:
    open_page(page, host)
    revoked = host.function_keys.pop("ops")  # the host reads its keys on every request
    try:
        problem = page.locator("#problem")
        problem.wait_for(state="visible", timeout=30_000)
        text = problem.inner_text()
        assert "401" in text
        assert "?code=<function key>" in text
        assert revoked not in page.content()
    finally:
        host.function_keys["ops"] = revoked


def test_the_routes_answer_as_docs_openapi_yaml_says(host: LocalHost) -> None:
    paths = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())["paths"]

    def documented(r: requests.Response, path: str) -> None:
        declared = paths[path]["get"]["responses"][str(r.status_code)]
        if r.content:
            assert r.headers["content-type"].split(";")[0] in declared["content"], r.headers["content-type"]

    page_answer = requests.get(f"{host.http_url}/api/status", headers={"x-functions-key": KEYS["ops"]}, timeout=30)
    documented(page_answer, "/api/status")
    assert "/api/status/assets/app.js" in page_answer.text
    for name in ("app.js", "style.css", "icon.svg"):
        r = requests.get(f"{host.http_url}/api/status/assets/{name}", timeout=30)  # no key: anonymous
        documented(r, "/api/status/assets/{name}")
        assert r.status_code == 200
        again = requests.get(
            f"{host.http_url}/api/status/assets/{name}", headers={"if-none-match": r.headers["etag"]}, timeout=30
        )
        documented(again, "/api/status/assets/{name}")
        assert (again.status_code, again.content) == (304, b"")
    missing = requests.get(f"{host.http_url}/api/status/assets/index.html", timeout=30)
    documented(missing, "/api/status/assets/{name}")
    assert missing.status_code == 404


# WCAG 2.x contrast ratio of every visible text against the background it is drawn on (the
# first opaque background up the tree): at least 4.5:1, or 3:1 for large text (1.4.3).
CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || !el.checkVisibility()) continue;
    const style = getComputedStyle(el);
    const [a, b] = [lum(rgb(style.color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) low.push(`${node.textContent.trim().slice(0, 30)}: ${ratio.toFixed(2)}`);
  }
  return low;
}"""


def test_every_text_meets_wcag_aa_contrast(host: LocalHost, page: Any) -> None:
    open_page(page, host, view="#id=render-more")
    # Its place, whatever it is by now: an earlier test's late arrival waits behind it, and the
    # reconcile pass re-ranks every 15 s ("1 of 1" or "1 of 2").
    page.locator("#detail .position").wait_for()
    page.locator("#cost details summary").click()  # the numbers table too
    assert page.evaluate(CONTRAST) == []


def test_a_hidden_tab_asks_nothing_and_refreshes_again_when_shown(host: LocalHost, page: Any) -> None:
    open_page(page, host)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/requests" in r.url else None)
    # What the browser does when the tab goes to the background: document.hidden turns true and
    # visibilitychange fires (headless Chromium has no other tab to switch to).
    page.evaluate("""() => { Object.defineProperty(document, "hidden", {value: true, configurable: true});
                             document.dispatchEvent(new Event("visibilitychange")); }""")
    asked.clear()
    page.wait_for_timeout(12_000)  # more than two refresh periods (5 s)
    assert asked == []
    page.evaluate("""() => { Object.defineProperty(document, "hidden", {value: false, configurable: true});
                             document.dispatchEvent(new Event("visibilitychange")); }""")
    wait_for(lambda: asked, what="refreshes again once the tab is shown", timeout=20)


def test_markup_in_the_address_is_shown_as_text(host: LocalHost, page: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_page(page, host, view="#id=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    page.get_by_text('No request "<img src=x onerror=alert(1)>"').wait_for()
    assert page.locator("#detail img").count() == 0
    assert dialogs == []
    assert page.errors == []


def test_a_request_with_a_trace_links_to_it(host: LocalHost, page: Any) -> None:
    # The producer's own W3C traceparent is the request's trace (shared.telemetry.tracecontext); the
    # page shows its id and links to it through VNB_TRACE_URL.
    Scene(host.http_url).submit(
        "team-a", {"id": "traced", "command": ["sh", "-c", "sleep 1"], "traceparent": TRACEPARENT}
    )
    open_page(page, host, view="#id=traced")
    link = page.locator("#detail").get_by_role("link", name="Open its trace")
    link.wait_for()
    assert link.get_attribute("href") == "https://traces.example.test/trace/4bf92f3577b34da6a3ce929d0e0e4736"
    assert link.get_attribute("rel") == "noopener noreferrer"
    assert "4bf92f3577b34da6a3ce929d0e0e4736" in page.locator("#detail").inner_text()
