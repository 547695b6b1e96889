"""Closing one position from the positions table: confirmed, for traders and operators,
flattened by a reduce-only market order, and the table updates by push."""

from __future__ import annotations

import re
from decimal import Decimal

from browser_support import Server, login, wait_live
from playwright.sync_api import Page, expect


def _open(server: Server, client: str, venue: str, symbol: str, side: str, qty: str) -> None:
    status, order = server.api("POST", "/orders", {
        "client": client, "venue": venue, "symbol": symbol, "side": side, "type": "market",
        "qty": qty})
    assert status == 201 and order["status"] == "filled", order


def _positions(server: Server) -> dict[tuple[str, str, str], Decimal]:
    status, body = server.api("GET", "/positions")
    assert status == 200, body
    return {(p["client"], p["venue"], p["symbol"]): Decimal(p["qty"]) for p in body}


def _flatten(server: Server) -> None:
    status, body = server.api("POST", "/controls/close-all", {"reason": "test cleanup"})
    assert status == 200, body
    status, body = server.api("POST", "/controls/enable-trading", {"reason": "test cleanup"})
    assert status == 200, body


def _row(page: Page, client: str, venue: str, symbol: str):
    return page.locator(f'#positions tr[data-client="{client}"][data-venue="{venue}"]'
                        f'[data-symbol="{symbol}"]')


def test_an_operator_closes_one_position_from_the_dashboard(page: Page,
                                                            server: Server) -> None:
    _open(server, "demo", "paper-binance", "BTC-PERP", "buy", "0.003")
    _open(server, "demo-2", "paper-bybit", "ETH-PERP", "sell", "0.02")
    try:
        login(page, server, "op", "/")
        wait_live(page)
        btc = _row(page, "demo", "paper-binance", "BTC-PERP")
        eth = _row(page, "demo-2", "paper-bybit", "ETH-PERP")
        expect(btc).to_have_count(1)
        expect(eth).to_have_count(1)
        page.evaluate("window.__notReloaded = true")

        # Escape: nothing is closed.
        btc.get_by_role("button", name="Close").click()
        dialog = page.locator("dialog#confirm")
        expect(dialog).to_be_visible()
        expect(page.locator("#confirm-title")).to_have_text("Close this position?")
        expect(page.locator("#confirm-scope")).to_contain_text("BTC-PERP long 0.003")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        assert _positions(server)[("demo", "paper-binance", "BTC-PERP")] == Decimal("0.003")

        btc.get_by_role("button", name="Close").click()
        page.fill("#confirm-reason", "take profit on BTC")
        with page.expect_response(lambda r: r.url.endswith("/ui/positions/close")):
            page.click("#confirm-go")
        expect(dialog).to_be_hidden()
        expect(page.locator("#toasts")).to_contain_text(re.compile(
            r"BTC-PERP on paper-binance \(demo\) closed: order \d+ filled, sell 0.003"))
        expect(btc).to_have_count(0)  # by push
        expect(eth).to_have_count(1)  # the other position stays
        expect(page.locator("#exits")).to_contain_text("BTC-PERP")
        assert page.evaluate("window.__notReloaded") is True, "the page was reloaded"
        positions = _positions(server)
        assert ("demo", "paper-binance", "BTC-PERP") not in positions
        assert positions[("demo-2", "paper-bybit", "ETH-PERP")] == Decimal("-0.02")

        page.goto(f"{server.base_url}/audit?action=position-close")
        entry = page.locator("#audit > tbody > tr", has_text="take profit on BTC")
        expect(entry).to_contain_text("BTC-PERP 0.003 → 0")
        expect(entry).to_contain_text("client demo, venue paper-binance")
        assert page.js_errors == []  # type: ignore[attr-defined]
    finally:
        _flatten(server)


def test_a_scoped_trader_closes_a_position_by_keyboard(page: Page, server: Server) -> None:
    _open(server, "demo", "paper-bybit", "SOL-PERP", "sell", "0.5")
    _open(server, "demo-2", "paper-binance", "SOL-PERP", "buy", "0.5")
    try:
        login(page, server, "trader", "/positions")  # the trader is scoped to demo
        wait_live(page)
        expect(page.locator("#positions tbody tr[data-symbol]")).to_have_count(1)
        row = _row(page, "demo", "paper-bybit", "SOL-PERP")
        button = row.get_by_role("button", name="Close")
        button.focus()
        # The table is re-rendered by push (prices move): the keyboard stays on Close.
        page.evaluate("document.getElementById('positions').dataset.old = 'yes'")
        expect(page.locator("#positions[data-old]")).to_have_count(0)  # replaced
        expect(button).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("dialog#confirm")).to_be_visible()
        # The reason is optional: straight to the confirm button.
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        expect(page.locator("#confirm-go")).to_be_focused()
        with page.expect_response(lambda r: r.url.endswith("/ui/positions/close")):
            page.keyboard.press("Enter")
        expect(row).to_have_count(0)
        expect(page.locator("#positions")).to_contain_text("No open positions")
        positions = _positions(server)
        assert ("demo", "paper-bybit", "SOL-PERP") not in positions
        assert positions[("demo-2", "paper-binance", "SOL-PERP")] == Decimal("0.5")
    finally:
        _flatten(server)


def test_a_viewer_has_no_close_button(page: Page, server: Server) -> None:
    _open(server, "demo", "paper-binance", "XRP-PERP", "buy", "100")
    try:
        login(page, server, "viewer", "/positions")
        wait_live(page)
        expect(page.locator("#positions tbody tr[data-symbol]")).to_have_count(1)
        expect(page.locator("#positions button")).to_have_count(0)
        expect(page.locator("dialog#confirm")).to_have_count(0)
    finally:
        _flatten(server)
