"""Acting from the browser: the order ticket, cancel, kill switches, close-all, restart.

Every check waits for the server's push (no reload, no polling) unless it says otherwise.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from decimal import Decimal

from browser_support import (
    MAX_DOC_PNG_BYTES,
    Server,
    confirm_control,
    doc_screenshot_path,
    fill_ticket,
    login,
    marks_snapshot,
    screenshot_path,
    submit_ticket,
    trading_state,
    wait_live,
    wait_marks_change,
)
from playwright.sync_api import Page, expect

ACTIVE = re.compile(r"\bstate-active\b")
HALTED = re.compile(r"\bstate-halted\b")
REDUCE_ONLY = re.compile(r"\bstate-reduce_only\b")
# htmx's ws extension retries with a "full jitter" exponential backoff (up to 1 s, 2 s,
# 4 s ...), so allow a few rounds of it after the server is back.
RECONNECT_TIMEOUT_MS = 60_000


def _far_below_bid(server: Server, symbol: str = "BTC-PERP",
                   venue: str = "paper-binance") -> str:
    """A passive buy price: 3% under the current bid, on BTC's 0.1 tick (inside the
    binance-usdm profile's 5% band around the mark)."""
    status, markets = server.api("GET", "/markets")
    assert status == 200, markets
    market = next(m for m in markets if m["symbol"] == symbol and m["venue"] == venue)
    return str((Decimal(market["bid"]) * Decimal("0.97")).quantize(Decimal("0.1")))


def _enable_everything(server: Server) -> None:
    status, body = server.api("POST", "/controls/enable-trading", {"reason": "test cleanup"})
    assert status == 200, body


def _no_reload_marker(page: Page) -> None:
    page.evaluate("window.__notReloaded = true")


def _assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__notReloaded") is True, "the page was reloaded"


# ---- the ticket ------------------------------------------------------------------------------

def test_ticket_order_appears_by_push_then_cancel(page: Page, server: Server) -> None:
    login(page, server, "op", "/orders")
    wait_live(page)
    _no_reload_marker(page)
    gets: list[str] = []
    page.on("request", lambda r: gets.append(r.url) if r.method == "GET" else None)

    coid = f"ticket-{int(time.time() * 1000)}"
    fill_ticket(page, qty="0.001", price=_far_below_bid(server), client_order_id=coid)
    submit_ticket(page)
    expect(page.locator("#ticket .toast-ok")).to_contain_text(coid)
    expect(page.locator("#ticket .field-error")).to_have_count(0)

    # The ticket's response replaces only #ticket: the blotter row comes over the socket.
    row = page.locator(f'#blotter tr[data-coid="{coid}"]')
    expect(row).to_have_count(1)
    expect(row.locator("td.status")).to_have_text("accepted")
    expect(row).to_contain_text("BTC-PERP")
    order_id = row.get_attribute("data-order-id")
    assert order_id and order_id.isdigit()
    status, order = server.api("GET", f"/orders/{order_id}")
    assert status == 200 and order["client_order_id"] == coid, order
    assert order["status"] == "accepted", order

    row.get_by_role("button", name="Cancel").click()
    expect(row.locator("td.status")).to_have_text("canceled")
    expect(row.get_by_role("button", name="Cancel")).to_have_count(0)  # no longer open
    expect(page.locator("#toasts")).to_contain_text(f"Order {order_id} canceled")
    status, order = server.api("GET", f"/orders/{order_id}")
    assert status == 200 and order["status"] == "canceled", order

    _assert_not_reloaded(page)
    assert gets == [], f"GET requests (reload or polling) instead of push: {gets}"
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_ticket_shows_the_api_message_next_to_the_field(page: Page, server: Server) -> None:
    login(page, server, "op", "/orders")
    wait_live(page)
    fill_ticket(page, qty="0.001", price="1.05", client_order_id="web-off-tick")
    submit_ticket(page)
    error = page.locator('#ticket .field-error[data-field="price"]')
    expect(error).to_contain_text("PRICE_NOT_ON_TICK")
    expect(error).to_contain_text("tick size 0.1")
    # Next to the field: inside the Price label.
    expect(page.locator("#ticket label:has(input[name=price]) .field-error")).to_have_count(1)
    expect(page.locator("#ticket .toast-ok")).to_have_count(0)
    # What the user typed is kept, so they can correct it.
    expect(page.locator("#ticket input[name=price]")).to_have_value("1.05")
    expect(page.locator("#ticket input[name=qty]")).to_have_value("0.001")
    # The rejection is recorded: the blotter keeps rejected orders, with their code.
    row = page.locator('#blotter tr[data-coid="web-off-tick"]')
    expect(row.locator("td.status")).to_have_text("rejected")
    expect(row.locator("td.reason")).to_have_text("PRICE_NOT_ON_TICK")
    expect(row.get_by_role("button", name="Cancel")).to_have_count(0)


def test_ticket_shows_the_schema_message_for_a_bad_number(page: Page, server: Server) -> None:
    login(page, server, "trader", "/orders")
    wait_live(page)
    fill_ticket(page, qty="lots", price=_far_below_bid(server), client_order_id="web-bad-qty")
    submit_ticket(page)
    expect(page.locator('#ticket .field-error[data-field="qty"]')).to_be_visible()
    expect(page.locator("#ticket .toast-ok")).to_have_count(0)
    expect(page.locator('#blotter tr[data-coid="web-bad-qty"]')).to_have_count(0)


def test_the_ticket_keeps_the_account_and_symbol_after_a_submit(page: Page,
                                                                server: Server) -> None:
    """After an order is placed, the ticket is ready for the next one on the same
    account and symbol: only the qty, the price and the client order id are cleared."""
    login(page, server, "op", "/orders")
    wait_live(page)
    fill_ticket(page, client="demo-2", venue="paper-bybit", symbol="ETH-PERP", side="buy",
                tif="gtc", qty="0.01", price="1000.00", client_order_id="web-keeps-1")
    ticket = page.locator("#ticket")
    ticket.locator("input[name=post_only]").check()
    submit_ticket(page)
    expect(ticket.locator(".toast-ok")).to_contain_text("web-keeps-1")
    for name, value in (("client", "demo-2"), ("venue", "paper-bybit"),
                        ("symbol", "ETH-PERP"), ("side", "buy"), ("type", "limit"),
                        ("time_in_force", "gtc")):
        expect(ticket.locator(f"select[name={name}]")).to_have_value(value)
    expect(ticket.locator("input[name=post_only]")).to_be_checked()
    for name in ("qty", "price", "client_order_id"):
        expect(ticket.locator(f"input[name={name}]")).to_have_value("")
    expect(ticket.locator("input[name=qty]")).to_be_focused()  # ready for the next one
    row = page.locator('#blotter tr[data-coid="web-keeps-1"]')
    expect(row).to_have_count(1)
    server.api("DELETE", f"/orders/{row.get_attribute('data-order-id')}")


# ---- kill switches -----------------------------------------------------------------------------

def test_disable_trading_banner_then_order_refused(page: Page, server: Server) -> None:
    login(page, server, "op", "/controls")
    wait_live(page)
    banner = page.locator("#banner")
    expect(banner).to_have_class(ACTIVE)
    try:
        # Without a reason nothing happens.
        page.click('tr[data-scope="global"] button[data-action="disable-trading"]')
        expect(page.locator("dialog#confirm")).to_be_visible()
        expect(page.locator("#confirm-scope")).to_contain_text("global")
        page.click("#confirm-go")
        page.wait_for_timeout(1000)
        expect(banner).to_have_class(ACTIVE)
        assert trading_state(server) == "active"
        page.click("#confirm-cancel")
        expect(page.locator("dialog#confirm")).to_be_hidden()
        _no_reload_marker(page)

        confirm_control(page, "global", "disable-trading", "browser test: halt everything")
        expect(page.locator("dialog#confirm")).to_be_hidden()
        expect(page.locator("#control-result")).to_contain_text("halted")
        expect(banner).to_have_class(HALTED)  # pushed over the socket
        expect(banner).to_contain_text("TRADING DISABLED")
        expect(page.locator('tr[data-scope="global"] td.own .chip')).to_have_text("HALTED")
        _assert_not_reloaded(page)
        assert trading_state(server) == "halted"

        page.goto(f"{server.base_url}/orders")
        wait_live(page)
        expect(page.locator("#banner")).to_have_class(HALTED)
        fill_ticket(page, price=_far_below_bid(server), client_order_id="web-while-halted")
        submit_ticket(page)
        refused = page.locator('#ticket .field-error[data-field="form"]')
        expect(refused).to_contain_text("TRADING_HALTED")
        expect(refused).to_contain_text("trading is halted")
        expect(page.locator("#ticket .toast-ok")).to_have_count(0)

        page.goto(f"{server.base_url}/controls")
        wait_live(page)
        confirm_control(page, "global", "enable-trading", "browser test: resume")
        expect(page.locator("#banner")).to_have_class(ACTIVE)
        expect(page.locator("#banner")).to_contain_text("TRADING ACTIVE")
        assert trading_state(server) == "active"

        page.goto(f"{server.base_url}/audit")
        audit = page.locator("#audit")
        expect(audit).to_contain_text("browser test: halt everything")
        expect(audit).to_contain_text("browser test: resume")
    finally:
        _enable_everything(server)


def test_close_all_flattens_the_positions_on_the_page(page: Page, server: Server) -> None:
    for client, symbol, venue, side, qty in (
            ("demo", "BTC-PERP", "paper-binance", "buy", "0.003"),
            ("demo-2", "ETH-PERP", "paper-bybit", "sell", "0.02")):
        status, order = server.api("POST", "/orders", {
            "client": client, "venue": venue, "symbol": symbol, "side": side,
            "type": "market", "qty": qty})
        assert status == 201 and order["status"] == "filled", order
    try:
        login(page, server, "op", "/")
        wait_live(page)
        positions = page.locator("#positions tbody tr[data-symbol]")
        expect(positions).to_have_count(2)
        expect(page.locator('#positions tr[data-symbol="BTC-PERP"]')).to_contain_text("long")
        expect(page.locator('#positions tr[data-symbol="ETH-PERP"]')).to_contain_text("short")
        _no_reload_marker(page)

        # A second tab on the kill-switch panel, while the dashboard stays open.
        controls = page.context.new_page()
        login(controls, server, "op", "/controls")
        wait_live(controls)
        confirm_control(controls, "global", "close-all", "browser test: flatten")
        results = controls.locator("#control-result table.close-results tbody tr")
        expect(results).to_have_count(2)
        for i in range(2):
            expect(results.nth(i)).to_have_class("result-closed")
            expect(results.nth(i).locator("td").nth(6)).to_have_text("closed")
        expect(controls.locator("#control-result")).to_contain_text("reduce-only")
        expect(controls.locator("#banner")).to_have_class(REDUCE_ONLY)
        controls.screenshot(path=str(screenshot_path("test_close_all_result_panel")),
                            full_page=True)
        controls.close()

        # The dashboard, untouched, got all of it by push.
        expect(positions).to_have_count(0)
        expect(page.locator("#positions")).to_contain_text("No open positions")
        expect(page.locator("#banner")).to_have_class(REDUCE_ONLY)
        expect(page.locator("#banner")).to_contain_text("REDUCE-ONLY")
        expect(page.locator("#exits")).to_contain_text("close_all")
        _assert_not_reloaded(page)
        status, body = server.api("GET", "/positions")
        assert status == 200 and all(Decimal(p["qty"]) == 0 for p in body), body
    finally:
        _enable_everything(server)


def test_readme_kill_switch_screenshot(page: Page, server: Server) -> None:
    """docs/screenshots/kill-switch.png: the panel after reduce-only on one client."""
    try:
        login(page, server, "op", "/controls")
        wait_live(page)
        confirm_control(page, "client demo", "reduce-only", "desk review: demo over budget")
        expect(page.locator("#banner")).to_have_class(REDUCE_ONLY)
        expect(page.locator("#banner")).to_contain_text("client demo")
        expect(page.locator('tr[data-scope="client demo"] td.own .chip')
               ).to_have_text("REDUCE-ONLY")
        expect(page.locator('tr[data-scope="client demo-2"] td.own .chip')).to_have_text("ACTIVE")
        # demo's accounts are reduce-only through their client, and say so.
        in_force = page.locator('tr[data-scope="client demo, venue paper-binance"] td.in-force')
        expect(in_force.locator(".chip")).to_have_text("REDUCE-ONLY")
        expect(in_force).to_contain_text("set on client demo")
        page.mouse.move(0, 0)
        path = doc_screenshot_path("kill-switch")
        page.screenshot(path=str(path))
        assert path.stat().st_size < MAX_DOC_PNG_BYTES, f"{path} is {path.stat().st_size} B"
    finally:
        status, body = server.api("POST", "/controls/enable-trading",
                                  {"client": "demo", "reason": "test cleanup"})
        assert status == 200, body


# ---- restart ---------------------------------------------------------------------------------

def test_page_recovers_after_the_server_restarts(page: Page,
                                                 make_server: Callable[[], Server]) -> None:
    server = make_server()  # its own server: this test stops it
    status, order = server.api("POST", "/orders", {
        "client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP", "side": "buy",
        "type": "limit", "qty": "0.001", "price": _far_below_bid(server),
        "client_order_id": "survives"})
    assert status == 201, order
    login(page, server, "op", "/")
    wait_live(page)
    wait_marks_change(page)
    expect(page.locator(f'#orders tr[data-order-id="{order["id"]}"]')).to_have_count(1)
    _no_reload_marker(page)

    # SIGTERM: a graceful shutdown (stop() fails if it hangs); uvicorn then re-raises the
    # signal, so the exit status is 0 or -SIGTERM.
    started = time.monotonic()
    log_from = server.log_size()
    code = server.stop()
    stopped_s = time.monotonic() - started
    stop_log = server.log(since=log_from, tail=100_000)
    assert code in (0, -signal.SIGTERM), f"exit code {code} on SIGTERM:\n{stop_log}"
    assert "Application shutdown complete" in stop_log, f"no graceful shutdown:\n{stop_log}"
    assert "Traceback" not in stop_log, stop_log

    live = page.locator("#live")
    expect(live).to_have_class(re.compile(r"\breconnecting\b"))
    expect(live).not_to_have_class(re.compile(r"\bon\b"))
    expect(live).to_contain_text("reconnecting")
    page.wait_for_timeout(1000)  # down for a while; the page keeps trying
    frozen = marks_snapshot(page)
    page.wait_for_timeout(1000)
    assert marks_snapshot(page) == frozen, "marks changed while the server was down"

    restarted = time.monotonic()
    server.start()  # same database, same port; returns once /readyz answers 200
    wait_live(page, timeout_ms=RECONNECT_TIMEOUT_MS)
    reconnect_s = time.monotonic() - restarted
    wait_marks_change(page)  # data flows again, by push, with no manual reload
    expect(page.locator(f'#orders tr[data-order-id="{order["id"]}"]')).to_have_count(1)
    _assert_not_reloaded(page)
    print(f"SIGTERM shutdown {stopped_s:.1f}s; page live again {reconnect_s:.1f}s after restart")
