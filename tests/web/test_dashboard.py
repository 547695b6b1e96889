"""The dashboard in a real browser: live data by push, roles, layout, README screenshot."""

from __future__ import annotations

import re
from decimal import Decimal

from browser_support import (
    MAX_DOC_PNG_BYTES,
    Server,
    doc_screenshot_path,
    login,
    screenshot_path,
    wait_live,
    wait_marks_change,
)
from playwright.sync_api import Page, expect

NUMBER = re.compile(r"^\d+(\.\d+)?$")
def test_dashboard_fills_with_live_data_by_push(page: Page, server: Server) -> None:
    login(page, server, "op")
    wait_live(page)
    expect(page.locator("#live")).to_have_text(re.compile("live"))
    rows = page.locator("#marks tbody tr")
    expect(rows).to_have_count(8)
    for row in page.locator("#marks tbody tr").all():
        venue, symbol = row.get_attribute("data-venue"), row.get_attribute("data-symbol")
        assert venue in ("paper-binance", "paper-bybit"), venue
        assert symbol and symbol.endswith("-PERP"), symbol
        expect(row.locator("td").first).to_contain_text(symbol)
        expect(row.locator("td").first).to_contain_text(venue)
        mark, bid, ask = (row.locator("td").nth(i).inner_text().strip() for i in (1, 2, 3))
        for value in (mark, bid, ask):
            assert NUMBER.match(value), f"not a number in the marks row of {venue} {symbol}"
        assert Decimal(bid) < Decimal(ask), (venue, symbol, bid, ask)
    expect(page.locator("#banner")).to_have_class(re.compile(r"\bstate-active\b"))

    # Prove push: no page reload and no HTTP request at all (no polling) while marks move,
    # and WebSocket frames arrive meanwhile.
    page.evaluate("window.__notReloaded = true")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    frames: list[int] = []
    # The socket opened before we could listen; count frames via the htmx event instead.
    page.evaluate("""() => { window.__frames = 0;
        document.body.addEventListener('htmx:wsAfterMessage', () => window.__frames++); }""")
    before, after = wait_marks_change(page)
    assert before != after
    assert page.evaluate("window.__notReloaded") is True, "the page was reloaded"
    assert requests == [], f"the dashboard made HTTP requests instead of being pushed: {requests}"
    frames.append(page.evaluate("window.__frames"))
    assert frames[0] >= 1, "no WebSocket message was received while the marks changed"
    assert page.js_errors == []  # type: ignore[attr-defined]


def _passive(server: Server) -> str:
    """A buy price 3 % under the bid: it rests (inside the venue's 5 % band)."""
    status, markets = server.api("GET", "/markets")
    assert status == 200, markets
    bid = next(m["bid"] for m in markets
               if m["symbol"] == "BTC-PERP" and m["venue"] == "paper-binance")
    return str((Decimal(bid) * Decimal("0.97")).quantize(Decimal("0.1")))


def _place(server: Server, **fields: str) -> dict:
    body = {"client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP", "side": "buy",
            "type": "limit", "qty": "0.001", **fields}
    status, order = server.api("POST", "/orders", body)
    assert status in (200, 201), (status, order)
    return order


def test_viewer_sees_no_action_buttons(page: Page, server: Server) -> None:
    order = _place(server, price=_passive(server), client_order_id="viewer-sees-this")
    login(page, server, "viewer", "/controls")
    wait_live(page)
    expect(page.locator('tr[data-scope="global"]')).to_have_count(1)
    expect(page.locator("button[data-action]")).to_have_count(0)
    expect(page.locator("dialog#confirm")).to_have_count(0)

    page.goto(f"{server.base_url}/orders")
    wait_live(page)
    row = page.locator(f'#blotter tr[data-order-id="{order["id"]}"]')
    expect(row).to_have_count(1)  # the viewer does see the order ...
    expect(page.locator("#ticket")).to_have_count(0)  # ... but has no ticket
    # ... and no Cancel / Replace (the order id opens its details, for everyone)
    expect(page.locator("#blotter button:not(.order-details)")).to_have_count(0)

    page.goto(f"{server.base_url}/")
    wait_live(page)
    expect(page.locator(f'#orders tr[data-order-id="{order["id"]}"]')).to_have_count(1)
    expect(page.locator("#orders button:not(.order-details)")).to_have_count(0)
    expect(page.locator("#positions button, #banner button")).to_have_count(0)
    server.api("DELETE", f"/orders/{order['id']}")


def test_scoped_trader_has_ticket_but_no_kill_switches(page: Page, server: Server) -> None:
    mine = _place(server, price=_passive(server), client_order_id="trader-own")
    other = _place(server, client="demo-2", price=_passive(server), client_order_id="trader-other")
    login(page, server, "trader", "/orders")
    wait_live(page)
    expect(page.locator("#ticket")).to_have_count(1)
    options = page.eval_on_selector_all("#ticket select[name=client] option",
                                        "os => os.map(o => o.textContent.trim())")
    assert options == ["demo"]
    expect(page.locator(f'#blotter tr[data-order-id="{mine["id"]}"] button',
                        has_text="Cancel")).to_have_count(1)
    expect(page.locator(f'#blotter tr[data-order-id="{other["id"]}"]')).to_have_count(0)

    page.goto(f"{server.base_url}/controls")
    wait_live(page)
    expect(page.locator("button[data-action]")).to_have_count(0)
    expect(page.locator('tr[data-scope="global"]')).to_have_count(0)  # not theirs to see
    for o in (mine, other):
        server.api("DELETE", f"/orders/{o['id']}")


def _overflow(page: Page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def _check_layout(page: Page, width: int, height: int) -> None:
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_timeout(300)  # let the layout (and the chart's autoSize) settle
    scroll_width, inner_width = _overflow(page)
    assert scroll_width <= inner_width + 1, (
        f"horizontal page overflow at {width}x{height}: scrollWidth {scroll_width} > "
        f"innerWidth {inner_width}")
    for selector in ("#banner", "#live", "#marks", "#positions", "#orders", "#equity-chart"):
        expect(page.locator(selector)).to_be_visible()
        # Measured in one evaluation: pushes replace #positions every second, and a box
        # asked for between two calls may belong to a detached element.
        box = page.evaluate("""(sel) => { const r = document.querySelector(sel)
            .getBoundingClientRect(); return {x: r.left, width: r.width}; }""", selector)
        assert box["width"] > 0, selector
        assert box["x"] >= -1 and box["x"] + box["width"] <= inner_width + 1, (
            f"{selector} sticks out of the viewport at {width}x{height}: {box}")


def test_layout_desktop_and_phone(page: Page, server: Server) -> None:
    _place(server, price=_passive(server), client_order_id="layout-order")
    login(page, server, "op")
    wait_live(page)
    expect(page.locator("#marks tbody tr")).to_have_count(8)
    _check_layout(page, 1366, 768)
    page.screenshot(path=str(screenshot_path("test_layout_desktop_1366x768")), full_page=True)
    _check_layout(page, 390, 844)
    page.screenshot(path=str(screenshot_path("test_layout_phone_390x844")), full_page=True)


def _cancel_button_outside(page: Page, table: str, order_id: int) -> str | None:
    """Why the order's Cancel button is not inside the visible part of its (scrolling)
    table, or None when it is."""
    button = page.locator(f'{table} tr[data-order-id="{order_id}"] button', has_text="Cancel")
    expect(button).to_have_count(1)
    inside = button.evaluate("""b => {
        const r = b.getBoundingClientRect();
        const w = b.closest('.table-wrap').getBoundingClientRect();
        return {button: [r.left, r.right], visible: [w.left, w.right],
                inside: r.left >= w.left - 1 && r.right <= w.right + 1}; }""")
    if inside["inside"]:
        return None
    return (f"{table}: the Cancel button of order {order_id} is at x {inside['button']}, "
            f"outside the visible part of its table {inside['visible']}")


def test_cancel_buttons_reachable_at_1366(page: Page, server: Server) -> None:
    """At the desktop size the Cancel button of an open order is on screen, on the
    dashboard's open orders and on the blotter, without scrolling a table sideways."""
    order = _place(server, price=_passive(server), client_order_id="reachable")
    try:
        login(page, server, "op")
        wait_live(page)
        problems = [_cancel_button_outside(page, "#orders", order["id"])]
        page.goto(f"{server.base_url}/orders")
        wait_live(page)
        problems.append(_cancel_button_outside(page, "#blotter", order["id"]))
        problems = [p for p in problems if p]
        assert not problems, ("at 1366x768 the operator must scroll a table sideways to "
                              "cancel an order: " + "; ".join(problems))
    finally:
        server.api("DELETE", f"/orders/{order['id']}")


def test_readme_dashboard_screenshot(page: Page, server: Server) -> None:
    """docs/screenshots/dashboard.png: positions, a resting order, data flowing."""
    for body in (
        {"client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP", "side": "buy",
         "type": "market", "qty": "0.004"},
        {"client": "demo", "venue": "paper-bybit", "symbol": "ETH-PERP", "side": "sell",
         "type": "market", "qty": "0.05"},
        {"client": "demo-2", "venue": "paper-binance", "symbol": "SOL-PERP", "side": "buy",
         "type": "market", "qty": "0.5"},
        # a round trip, for a row under "Recent exits"
        {"client": "demo-2", "venue": "paper-bybit", "symbol": "XRP-PERP", "side": "buy",
         "type": "market", "qty": "100"},
        {"client": "demo-2", "venue": "paper-bybit", "symbol": "XRP-PERP", "side": "sell",
         "type": "market", "qty": "100"},
    ):
        status, order = server.api("POST", "/orders", body)
        assert status in (200, 201) and order["status"] == "filled", (status, order)
    resting = _place(server, price=_passive(server), client_order_id="readme-bid")
    login(page, server, "op")
    wait_live(page)
    expect(page.locator("#positions tbody tr[data-symbol]")).to_have_count(3)
    expect(page.locator(f'#orders tr[data-order-id="{resting["id"]}"]')).to_have_count(1)
    expect(page.locator("#exits")).to_contain_text("XRP-PERP")
    wait_marks_change(page)  # data flowed
    page.wait_for_timeout(1500)  # a few equity points for the chart
    page.mouse.move(0, 0)
    path = doc_screenshot_path("dashboard")
    page.screenshot(path=str(path), full_page=True)  # 1366 wide: positions and orders
    assert path.stat().st_size < MAX_DOC_PNG_BYTES, f"{path} is {path.stat().st_size} bytes"
