"""The order ticket places the newer order types: a trailing stop with its callback and
activation price, a close-position stop without a qty; and it may ask for strict sizing."""

from __future__ import annotations

import time

from browser_support import Server, fill_ticket, login, submit_ticket, wait_live
from playwright.sync_api import Page, expect


def _bid(server: Server) -> str:
    status, markets = server.api("GET", "/markets")
    assert status == 200
    return next(m["bid"] for m in markets
                if m["venue"] == "paper-binance" and m["symbol"] == "BTC-PERP")


def test_a_trailing_stop_from_the_ticket(page: Page, server: Server) -> None:
    login(page, server, "op", "/orders")
    wait_live(page)
    coid = f"trail-{int(time.time() * 1000)}"
    fill_ticket(page, side="sell", type="trailing_stop", qty="0.001", client_order_id=coid)
    page.locator("#ticket input[name=callback_rate]").fill("1.5")
    submit_ticket(page)
    expect(page.locator("#ticket .toast-ok")).to_contain_text(coid)
    _, orders = server.api("GET", "/orders?client=demo&limit=20")
    order = next(o for o in orders["items"] if o["client_order_id"] == coid)
    assert order["type"] == "trailing_stop" and order["callback_rate"] == "1.5"
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_a_close_position_stop_needs_no_qty(page: Page, server: Server) -> None:
    status, opened = server.api("POST", "/orders", {
        "client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP", "side": "buy",
        "type": "market", "qty": "0.001"})
    assert status == 201, opened
    login(page, server, "op", "/orders")
    wait_live(page)
    coid = f"closepos-{int(time.time() * 1000)}"
    trigger = f"{float(_bid(server)) * 0.9:.1f}"
    fill_ticket(page, side="sell", type="stop", qty="", client_order_id=coid)
    page.locator("#ticket input[name=trigger_price]").fill(trigger)
    page.locator("#ticket input[name=close_position]").check()
    submit_ticket(page)
    expect(page.locator("#ticket .toast-ok")).to_contain_text(coid)
    _, orders = server.api("GET", "/orders?client=demo&limit=20")
    order = next(o for o in orders["items"] if o["client_order_id"] == coid)
    assert order["close_position"] is True and order["status"] == "accepted"


def test_the_ticket_asks_for_strict_sizing(page: Page, server: Server) -> None:
    login(page, server, "op", "/orders")
    wait_live(page)
    fill_ticket(page, type="market", qty="0.005", price="")
    page.locator("#ticket select[name=sizing_mode]").select_option("strict")
    page.locator("#ticket input[name=sizing_max_impact_bps]").fill("0.0001")
    submit_ticket(page)
    expect(page.locator("#ticket .field-error")).to_contain_text("IMPACT_TOO_HIGH")
