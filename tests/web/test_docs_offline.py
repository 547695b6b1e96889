"""The API docs work offline: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) in a real
Chromium with every request off this machine refused, under their Content-Security-
Policy, with no console error and no policy violation.

Each page's requests go through ``page.route``: loopback ones are served, anything
else is aborted and recorded, and the test asserts none was even attempted (a page
that still reached for a CDN would fail here even if it happened to render).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from browser_support import Server
from playwright.sync_api import ConsoleMessage, Page, Route, expect

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

# Recorded before any of the page's own scripts run (init scripts are not subject to
# the page's policy): every violation the browser reports.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`
    + ` (${e.sourceFile || ''}:${e.lineNumber || ''})`);
});
"""


@dataclass
class Offline:
    """A page cut off from everything but this machine, with what went wrong on it."""

    page: Page
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        return self.page.evaluate("window.__cspViolations || []")

    def assert_clean(self) -> None:
        assert self.blocked == [], f"requests off this machine: {self.blocked}"
        assert self.violations() == []
        assert self.console_errors == []
        assert self.page.js_errors == []  # type: ignore[attr-defined]


@pytest.fixture
def offline(page: Page) -> Iterator[Offline]:
    state = Offline(page)

    def route(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            state.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            state.console_errors.append(message.text)

    page.route("**/*", route)
    page.on("console", console)
    page.add_init_script(RECORD_VIOLATIONS)
    yield state


def test_swagger_ui_renders_every_operation_offline(offline: Offline, server: Server) -> None:
    page = offline.page
    response = page.goto(f"{server.base_url}/docs")
    assert response is not None and response.ok
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "https:" not in policy

    expect(page.locator(".opblock-summary-description", has_text="Place an order")
           ).to_be_visible()
    operations = page.locator(".opblock")
    assert operations.count() >= 20  # orders, portfolio, controls, auth, health...
    expect(page.locator(".opblock-summary-path[data-path='/api/v1/orders']").first
           ).to_be_visible()

    # "Try it out" on GET /healthz: the UI's own request reaches this server.
    healthz = page.locator(".opblock-get", has=page.locator("[data-path='/healthz']"))
    healthz.locator(".opblock-summary").click()
    healthz.locator("button.try-out__btn").click()
    with page.expect_response(lambda r: r.url.endswith("/healthz")) as answered:
        healthz.locator("button.execute").click()
    assert answered.value.status == 200
    expect(healthz.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")

    offline.assert_clean()


def test_redoc_renders_the_reference_and_searches_offline(offline: Offline,
                                                          server: Server) -> None:
    page = offline.page
    response = page.goto(f"{server.base_url}/redoc")
    assert response is not None and response.ok
    assert "https:" not in response.headers["content-security-policy"]

    # The operation list (side menu) and the operation's own section.
    menu = page.locator("[role=menu]").first
    expect(menu).to_be_visible()
    expect(page.locator("h2", has_text="Place an order")).to_be_visible()
    assert page.locator("[role=menuitem]").count() >= 20
    assert page.locator("[data-section-id*='operation/']").count() >= 20

    # Search runs in ReDoc's blob: worker: allowed by the policy, and it finds things.
    page.get_by_placeholder("Search...").fill("cancel")
    results = page.locator("[data-role='search:results'] [role=menuitem]")
    expect(results.filter(has_text="Cancel an order (idempotent)")).to_have_count(1)
    expect(results.filter(has_text="Place an order")).to_have_count(0)

    offline.assert_clean()
