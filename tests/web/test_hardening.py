"""Browser hardening in a real Chromium: every page runs under the Content-Security-Policy
with no violation, the dashboard still updates by push, the kill-switch panel cannot be
framed, and a user scoped to one client sees nothing of another's in the audit log."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from browser_support import (
    UI_TIMEOUT_MS,
    Server,
    login,
    trading_state,
    wait_live,
    wait_marks_change,
)
from playwright.sync_api import Page, expect

PAGES = ("/", "/controls", "/orders", "/positions", "/trades", "/audit")

# Recorded in the page before any of its own scripts run (Playwright's init scripts are
# not subject to the page's policy): every violation the browser reports.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`
    + ` (${e.sourceFile || ''}:${e.lineNumber || ''}) ${e.sample || ''}`);
});
"""


@pytest.fixture
def csp_page(page: Page) -> Iterator[tuple[Page, list[str]]]:
    """The page, recording CSP violations (DOM events and console reports) as they come."""
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text)
            if "Content Security Policy" in m.text or "Content-Security-Policy" in m.text
            else None)
    page.add_init_script(RECORD_VIOLATIONS)
    yield page, console


def violations(page: Page, console: list[str]) -> list[str]:
    return [*page.evaluate("window.__cspViolations || []"), *console]


def test_every_page_runs_under_the_policy_with_no_violation(csp_page, server: Server) -> None:
    page, console = csp_page
    response = page.goto(f"{server.base_url}/login")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    login(page, server, "op")
    for path in PAGES:
        response = page.goto(f"{server.base_url}{path}")
        assert response is not None and response.ok, path
        wait_live(page)  # htmx and its ws extension run, the socket is open
        page.wait_for_timeout(1200)  # a periodic push or two, swapped in
        assert violations(page, console) == [], path
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_the_dashboard_still_updates_by_push_under_the_policy(csp_page,
                                                              server: Server) -> None:
    page, console = csp_page
    login(page, server, "op")
    wait_live(page)
    # The equity chart (lightweight-charts) draws: its canvas is there.
    expect(page.locator("#equity-chart canvas").first).to_be_attached()
    before, after = wait_marks_change(page)
    assert before != after
    # An order placed elsewhere appears by push.
    status, order = server.api("POST", "/orders", {
        # (paper-bybit: binance-usdm's 5 % band around the mark would refuse 30000.0)
        "client": "demo", "venue": "paper-bybit", "symbol": "BTC-PERP", "side": "buy",
        "type": "limit", "qty": "0.001", "price": "30000.0",
        "client_order_id": "csp-pushed-row"})
    assert status == 201, order
    expect(page.locator(f'#orders tr[data-order-id="{order["id"]}"]')).to_have_count(1)
    server.api("DELETE", f"/orders/{order['id']}")
    expect(page.locator(f'#orders tr[data-order-id="{order["id"]}"]')).to_have_count(0)
    assert violations(page, console) == []
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_the_kill_switch_panel_cannot_be_framed(page: Page, server: Server) -> None:
    login(page, server, "op", "/controls")
    response = page.goto(f"{server.base_url}/controls")
    assert response is not None and response.ok
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    expect(page.locator('tr[data-scope="global"] button[data-action]').first).to_be_visible()

    # Another page frames it: the browser refuses to load it (Chromium puts its error page
    # in the frame instead).
    page.goto("about:blank")
    page.set_content(f'<iframe id="victim" src="{server.base_url}/controls" '
                     'width="800" height="600"></iframe>')
    page.wait_for_function("document.querySelector('#victim') !== null")
    deadline_ms = UI_TIMEOUT_MS
    while deadline_ms > 0 and len(page.frames) < 2:
        page.wait_for_timeout(100)
        deadline_ms -= 100
    (child,) = page.frames[1:]
    while deadline_ms > 0 and child.url in ("", "about:blank"):
        page.wait_for_timeout(100)
        deadline_ms -= 100
    assert child.url.startswith("chrome-error://"), f"the panel was framed: {child.url}"
    frame = page.frame_locator("#victim")
    expect(frame.locator("button[data-action]")).to_have_count(0)
    expect(frame.locator("#banner")).to_have_count(0)


def test_a_scoped_user_sees_only_their_clients_in_a_global_close_all(page: Page,
                                                                     server: Server) -> None:
    for client, venue, side in (("demo", "paper-binance", "buy"),
                                ("demo-2", "paper-bybit", "sell")):
        status, order = server.api("POST", "/orders", {
            "client": client, "venue": venue, "symbol": "ETH-PERP", "side": side,
            "type": "market", "qty": "0.02"})
        assert status == 201 and order["status"] == "filled", order
    try:
        status, body = server.api("POST", "/controls/close-all",
                                  {"reason": "hardening test: close everything"})
        assert status == 200, body
        assert {r["client"] for r in body["results"]} == {"demo", "demo-2"}

        login(page, server, "trader", "/audit")  # the trader is scoped to demo
        row = page.locator("#audit > tbody > tr", has_text="hardening test: close everything")
        expect(row).to_have_count(1)
        details = row.locator("td.details")
        # The results as a small table: their own position only.
        results = details.locator("table.close-results tbody tr")
        expect(results).to_have_count(1)
        expect(results.locator("td").nth(0)).to_have_text("demo")
        expect(results.locator("td").nth(1)).to_have_text("paper-binance")
        expect(details).not_to_contain_text("demo-2")
        expect(details).not_to_contain_text("paper-bybit")
        expect(page.locator("#audit")).not_to_contain_text(re.compile(r"demo-2"))

        # An unscoped operator sees every client's result.
        page.context.clear_cookies()
        login(page, server, "op", "/audit")
        details = page.locator("#audit > tbody > tr", has_text="hardening test: close everything"
                               ).locator("td.details")
        expect(details).to_contain_text("demo-2")
        expect(details).to_contain_text("paper-bybit")
    finally:
        server.api("POST", "/controls/enable-trading", {"reason": "hardening test: done"})
        assert trading_state(server) == "active"
