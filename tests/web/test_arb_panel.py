"""The dashboard's funding-rate arbitrage panel in a real browser: an operator starts
and stops the arbitrage from it, the panel follows by push (no reload), it shows
seed 001's portfolio summary, and says that open trades are unmanaged when stopped
or halted; a viewer sees it without the buttons."""

from __future__ import annotations

from browser_support import Server, login, wait_live
from playwright.sync_api import Page, expect


def test_an_operator_starts_and_stops_the_arbitrage_from_the_dashboard(
        page: Page, server: Server) -> None:
    login(page, server, "op", "/")
    wait_live(page)
    panel = page.locator("#arb")
    expect(panel).to_contain_text("not started")
    for label in ("Capital", "Available", "Utilization", "Win rate", "Cumulative P&L",
                  "Realistic APR", "Leg-outs"):
        expect(panel.locator("dt", has_text=label)).to_be_visible()
    expect(panel.locator("dd").first).to_contain_text("20,000.00")
    page.evaluate("window.__notReloaded = true")
    panel.get_by_role("button", name="Start arbitrage").click()
    expect(page.locator("#toasts")).to_contain_text("arbitrage started")
    expect(panel.locator(".arb-status")).to_contain_text("running")
    status, body = server.api("GET", "/arb")
    assert status == 200 and body["running"]
    page.on("dialog", lambda dialog: dialog.accept())
    panel.get_by_role("button", name="Stop arbitrage").click()
    expect(page.locator("#toasts")).to_contain_text("arbitrage stopped")
    expect(panel.locator(".arb-status")).to_contain_text("stopped")
    assert page.evaluate("window.__notReloaded") is True  # it came by push
    assert not page.js_errors  # type: ignore[attr-defined]


def test_a_viewer_sees_the_panel_without_buttons(page: Page, server: Server) -> None:
    login(page, server, "viewer", "/")
    wait_live(page)
    expect(page.locator("#arb .arb-portfolio")).to_be_visible()
    expect(page.get_by_role("button", name="Start arbitrage")).to_have_count(0)
    expect(page.get_by_role("button", name="Stop arbitrage")).to_have_count(0)
