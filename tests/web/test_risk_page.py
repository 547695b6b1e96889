"""The risk page in a real browser: usage bars and breaker states per client, a trip
shown by push (no reload) with what tripped it, and an operator's reset from the page."""

from __future__ import annotations

from browser_support import Server, login, wait_live
from playwright.sync_api import Page, expect

TIGHT = {"price_band_pct": None,
         "breakers": {"consecutive_losses": 1, "daily_loss_pct": None,
                      "max_drawdown_pct": None}}


def _round_trip(server: Server) -> None:
    for side in ("buy", "sell"):
        status, order = server.api("POST", "/orders", {
            "client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP", "side": side,
            "type": "market", "qty": "0.001"})
        assert status == 201, order


def test_a_trip_shows_live_and_an_operator_resets_it(page: Page, server: Server) -> None:
    status, body = server.api("PUT", "/risk/demo", {"profile": TIGHT, "reason": "web test"})
    assert status == 200, body
    login(page, server, "op", "/risk")
    wait_live(page)
    card = page.locator('.risk-card[data-client="demo"]')
    expect(card).to_contain_text("profile: set")
    row = card.locator('tr[data-breaker="consecutive_losses"]')
    expect(row).to_contain_text("ok")
    expect(card.locator(".bars li").first).to_contain_text("Open orders")
    page.evaluate("window.__notReloaded = true")

    for _ in range(5):  # a loss, unless the synthetic market jumped in between
        _round_trip(server)
        status, risk = server.api("GET", "/risk/demo")
        if any(b["tripped"] for b in risk["breakers"]):
            break
    expect(row).to_have_class("tripped")
    expect(row).to_contain_text("losing trades in a row")
    assert page.evaluate("window.__notReloaded") is True  # it came by push

    page.on("dialog", lambda dialog: dialog.accept())
    row.locator("input[name=reason]").fill("reviewed the losses")
    row.get_by_role("button", name="Reset").click()
    expect(page.locator("#toasts")).to_contain_text("consecutive losses breaker of demo reset")
    expect(row).not_to_have_class("tripped")
    status, risk = server.api("GET", "/risk/demo")
    assert not any(b["tripped"] for b in risk["breakers"])
    assert not page.js_errors  # type: ignore[attr-defined]


def test_a_viewer_sees_the_page_without_reset_buttons(page: Page, server: Server) -> None:
    login(page, server, "viewer", "/risk")
    expect(page.locator("#rejections")).to_be_visible()
    expect(page.locator(".risk-card").first).to_be_visible()
    expect(page.get_by_role("button", name="Reset")).to_have_count(0)
