"""Acting from the browser: the order ticket, cancel, kill switches, close-all, restart.

Every check waits for the server's push (no reload) unless it says otherwise.
"""

from __future__ import annotations

import signal
import time
from decimal import Decimal

from browser_support import Server, confirm_control, login, wait_live, wait_marks_change
from playwright.sync_api import Page, expect


def _bid(server: Server, symbol: str = "BTC-PERP", venue: str = "paper-binance") -> Decimal:
    status, markets = server.api("GET", "/markets")
    assert status == 200
    market = next(m for m in markets if m["symbol"] == symbol and m["venue"] == venue)
    return Decimal(market["bid"])


def _fill_ticket(page: Page, **fields: str) -> None:
    for name, value in fields.items():
        selector = f"#ticket [name={name}]"
        if page.eval_on_selector(selector, "el => el.tagName") == "SELECT":
            page.select_option(selector, value)
        else:
            page.fill(selector, value)


def _enable_everything(server: Server) -> None:
    status, _ = server.api("POST", "/controls/enable-trading", {"reason": "test cleanup"})
    assert status == 200


def test_ticket_order_appears_by_push_then_cancel(page: Page, server: Server) -> None:
    login(page, server, "op", "/orders")
    wait_live(page)
    price = (_bid(server) * Decimal("0.9")).quantize(Decimal("0.1"))
    coid = f"ticket-{int(time.time() * 1000)}"
    _fill_ticket(page, client="demo", venue="paper-binance", symbol="BTC-PERP", side="buy",
                 type="limit", time_in_force="gtc", qty="0.001", price=str(price),
                 client_order_id=coid)
    page.click("#ticket button[type=submit]")
    expect(page.locator("#ticket .toast-ok")).to_contain_text(coid)
    row = page.locator(f'#blotter tr[data-coid="{coid}"]')
    expect(row).to_be_visible()  # pushed into the blotter; the page was not reloaded
    expect(row.locator(".status")).to_have_text("accepted")
    row.get_by_role("button", name="Cancel").click()
    expect(row.locator(".status")).to_have_text("canceled")
    status, order = server.api("GET", f"/orders/{row.get_attribute('data-order-id')}")
    assert status == 200 and order["status"] == "canceled"


def test_ticket_shows_the_api_message_next_to_the_field(page: Page, server: Server) -> None:
    login(page, server, "op", "/orders")
    wait_live(page)
    _fill_ticket(page, client="demo", venue="paper-binance", symbol="BTC-PERP", side="buy",
                 type="limit", qty="0.001", price="1.05")
    page.click("#ticket button[type=submit]")
    error = page.locator('#ticket .field-error[data-field="price"]')
    expect(error).to_contain_text("PRICE_NOT_ON_TICK")
    expect(error).to_contain_text("tick size 0.1")
    # what the user typed is kept, so they can correct it
    expect(page.locator("#ticket [name=price]")).to_have_value("1.05")


def test_disable_trading_banner_then_order_refused(page: Page, server: Server) -> None:
    login(page, server, "op", "/controls")
    wait_live(page)
    expect(page.locator("#banner")).to_have_class("banner state-active")
    try:
        confirm_control(page, "global", "disable-trading", "browser test: halt everything")
        expect(page.locator("#banner")).to_have_class("banner state-halted")
        expect(page.locator("#banner")).to_contain_text("TRADING DISABLED")
        expect(page.locator('tr[data-scope="global"] .chip')).to_have_text("HALTED")

        page.goto(f"{server.base_url}/orders")
        wait_live(page)
        expect(page.locator("#banner")).to_have_class("banner state-halted")
        price = (_bid(server) * Decimal("0.9")).quantize(Decimal("0.1"))
        _fill_ticket(page, client="demo", venue="paper-binance", symbol="BTC-PERP",
                     side="buy", type="limit", qty="0.001", price=str(price))
        page.click("#ticket button[type=submit]")
        refused = page.locator("#ticket .field-error")
        expect(refused).to_contain_text("TRADING_HALTED")
        expect(refused).to_contain_text("trading is halted")
        status, audit_rows = server.api("GET", "/controls")
        assert status == 200 and audit_rows[0]["state"] == "halted"
    finally:
        _enable_everything(server)
    expect(page.locator("#banner")).to_have_class("banner state-active")  # pushed back


def test_close_all_flattens_the_positions_on_the_page(page: Page, server: Server) -> None:
    for symbol, venue, qty in (("BTC-PERP", "paper-binance", "0.003"),
                               ("ETH-PERP", "paper-bybit", "0.02")):
        status, order = server.api("POST", "/orders", {
            "client": "demo", "venue": venue, "symbol": symbol, "side": "buy",
            "type": "market", "qty": qty})
        assert status == 201 and order["status"] == "filled", order
    login(page, server, "op", "/")
    wait_live(page)
    positions = page.locator("#positions tbody tr[data-symbol]")
    expect(positions).to_have_count(2)

    page.goto(f"{server.base_url}/controls")
    wait_live(page)
    try:
        confirm_control(page, "global", "close-all", "browser test: flatten")
        results = page.locator("#control-result table.close-results tbody tr")
        expect(results).to_have_count(2)
        for i in range(2):
            expect(results.nth(i)).to_have_class("result-closed")
        expect(page.locator("#banner")).to_have_class("banner state-reduce_only")

        page.goto(f"{server.base_url}/")
        wait_live(page)
        expect(page.locator("#positions tbody tr[data-symbol]")).to_have_count(0)
        expect(page.locator("#positions")).to_contain_text("No open positions")
        expect(page.locator("#exits")).to_contain_text("close_all")
    finally:
        _enable_everything(server)


def test_close_all_result_reaches_an_open_dashboard_by_push(page: Page, server: Server
                                                             ) -> None:
    status, order = server.api("POST", "/orders", {
        "client": "demo-2", "venue": "paper-binance", "symbol": "SOL-PERP", "side": "sell",
        "type": "market", "qty": "0.3"})
    assert status == 201 and order["status"] == "filled", order
    login(page, server, "op", "/")
    wait_live(page)
    row = page.locator('#positions tr[data-symbol="SOL-PERP"][data-client="demo-2"]')
    expect(row).to_be_visible()
    try:
        status, result = server.api("POST", "/controls/close-all",
                                    {"client": "demo-2", "reason": "browser test: push"})
        assert status == 200 and {r["status"] for r in result["results"]} == {"closed"}
        expect(row).to_have_count(0)  # the open page lost the row without a reload
        expect(page.locator("#banner")).to_have_class("banner state-reduce_only")
    finally:
        _enable_everything(server)


def test_page_recovers_after_the_server_restarts(page: Page, make_server) -> None:
    server = make_server()
    login(page, server, "op", "/")
    wait_live(page)
    wait_marks_change(page)
    # SIGTERM: the server shuts down gracefully (stop() fails if it hangs); uvicorn then
    # re-raises the signal, so the exit status is 0 or -SIGTERM.
    assert server.stop() in (0, -signal.SIGTERM)
    expect(page.locator("#live")).to_have_class("live reconnecting", timeout=10_000)
    server.start()
    expect(page.locator("#live")).to_have_class("live on", timeout=30_000)
    wait_marks_change(page)  # data flows again, with no manual reload
    status, _ = server.api("GET", "/positions")
    assert status == 200
