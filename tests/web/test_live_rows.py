"""Live order rows in a real browser: a push that changes one row and adds another (or
changes a row and re-renders a whole fragment) shows both, with no reload.

The regression this guards: the browser parses a pushed message as one piece of HTML,
and a ``<tr>`` outside a table context (or after a ``<div>``) is dropped by the HTML
parser, so a cancel/replace's successor, or a row change pushed together with the
positions table, never appeared until a reload.
"""

from __future__ import annotations

from decimal import Decimal

from browser_support import Server, login, new_tab, wait_live
from playwright.sync_api import Page, expect

from app.web import views


def _market(server: Server, symbol: str = "BTC-PERP", venue: str = "paper-binance"
            ) -> tuple[Decimal, Decimal]:
    status, markets = server.api("GET", "/markets")
    assert status == 200, markets
    m = next(m for m in markets if m["symbol"] == symbol and m["venue"] == venue)
    return Decimal(m["bid"]), Decimal(m["ask"])


def _passive_price(server: Server, factor: str = "0.97") -> str:
    """A buy price well under the bid (BTC's tick is 0.1): it rests, inside the venue's
    5 % band around the mark."""
    bid, _ = _market(server)
    return str((bid * Decimal(factor)).quantize(Decimal("0.1")))


def _rest(server: Server, coid: str, client: str = "demo") -> dict:
    status, order = server.api("POST", "/orders", {
        "client": client, "venue": "paper-binance", "symbol": "BTC-PERP", "side": "buy",
        "type": "limit", "qty": "0.001", "price": _passive_price(server),
        "client_order_id": coid})
    assert status == 201 and order["status"] == "accepted", order
    return order


def _flatten(server: Server) -> None:
    status, body = server.api("POST", "/controls/close-all", {"reason": "test cleanup"})
    assert status == 200, body
    status, body = server.api("POST", "/controls/enable-trading", {"reason": "test cleanup"})
    assert status == 200, body


def _open_both(page: Page, server: Server) -> Page:
    """The dashboard in ``page`` and the blotter in a second tab, both live."""
    login(page, server, "op", "/")
    wait_live(page)
    blotter = new_tab(page)
    blotter.goto(f"{server.base_url}/orders")
    wait_live(blotter)
    for p in (page, blotter):
        p.evaluate("window.__notReloaded = true")
    return blotter


def _not_reloaded(*pages: Page) -> None:
    for p in pages:
        assert p.evaluate("window.__notReloaded") is True, "the page was reloaded"


def test_a_replace_via_the_api_shows_the_successor(page: Page, server: Server) -> None:
    original = _rest(server, "live-replace-api")
    blotter = _open_both(page, server)
    expect(page.locator(f'#orders tr[data-order-id="{original["id"]}"]')).to_have_count(1)
    expect(blotter.locator(f'#blotter tr[data-order-id="{original["id"]}"]')).to_have_count(1)

    new_price = _passive_price(server, "0.965")
    status, successor = server.api("POST", f"/orders/{original['id']}/replace",
                                   {"price": new_price})
    assert status == 200 and successor["status"] == "accepted", successor
    sid = successor["id"]

    # Dashboard: the original leaves Open orders, its successor joins, in one push.
    expect(page.locator(f'#orders tr[data-order-id="{sid}"]')).to_have_count(1)
    # (As the dashboard writes prices: 57897.0 is shown "57897".)
    shown = format(Decimal(new_price).normalize(), "f")
    expect(page.locator(f'#orders tr[data-order-id="{sid}"]')).to_contain_text(shown)
    expect(page.locator(f'#orders tr[data-order-id="{original["id"]}"]')).to_have_count(0)
    # Blotter: the original's row changes (canceled) and the successor's row is added.
    old_row = blotter.locator(f'#blotter tr[data-order-id="{original["id"]}"]')
    expect(old_row.locator("td.status")).to_contain_text("canceled")
    new_row = blotter.locator(f'#blotter tr[data-order-id="{sid}"]')
    expect(new_row).to_have_count(1)
    expect(new_row.locator("td.status")).to_contain_text("accepted")
    expect(new_row).to_have_attribute("data-coid", "live-replace-api.r1")
    _not_reloaded(page, blotter)
    status, api_view = server.api("GET", f"/orders/{sid}")
    assert status == 200 and api_view["status"] == "accepted", api_view
    server.api("DELETE", f"/orders/{sid}")
    expect(page.locator(f'#orders tr[data-order-id="{sid}"]')).to_have_count(0)
    assert page.js_errors == [] and blotter.js_errors == []  # type: ignore[attr-defined]


def test_a_replace_that_fills_shows_the_position_and_both_rows(page: Page,
                                                               server: Server) -> None:
    """One command fills (a position appears) while one row changes and another is
    added: the dashboard shows the position and drops the replaced row; the blotter
    shows both rows."""
    original = _rest(server, "live-replace-fill")
    try:
        blotter = _open_both(page, server)
        expect(page.locator('#positions tr[data-symbol="BTC-PERP"]')).to_have_count(0)
        expect(page.locator(f'#orders tr[data-order-id="{original["id"]}"]')
               ).to_have_count(1)
        _, ask = _market(server)
        crossing = str((ask * Decimal("1.01")).quantize(Decimal("0.1")))
        status, successor = server.api("POST", f"/orders/{original['id']}/replace",
                                       {"price": crossing})
        assert status == 200 and successor["status"] == "filled", successor
        sid = successor["id"]

        expect(page.locator('#positions tr[data-symbol="BTC-PERP"]')).to_have_count(1)
        expect(page.locator('#positions tr[data-symbol="BTC-PERP"]')).to_contain_text("long")
        expect(page.locator(f'#orders tr[data-order-id="{original["id"]}"]')
               ).to_have_count(0)
        expect(page.locator(f'#orders tr[data-order-id="{sid}"]')).to_have_count(0)

        expect(blotter.locator(f'#blotter tr[data-order-id="{original["id"]}"] td.status')
               ).to_contain_text("canceled")
        expect(blotter.locator(f'#blotter tr[data-order-id="{sid}"] td.status')
               ).to_contain_text("filled")
        _not_reloaded(page, blotter)
        assert page.js_errors == [] and blotter.js_errors == []  # type: ignore[attr-defined]
    finally:
        _flatten(server)


def test_the_replace_button_shows_the_successor(page: Page, server: Server) -> None:
    """The blotter's Replace button: a dialog (no window.prompt) for the new price and
    qty; the successor appears in the blotter and on the dashboard by push."""
    original = _rest(server, "live-replace-button")
    blotter = _open_both(page, server)
    row = blotter.locator(f'#blotter tr[data-order-id="{original["id"]}"]')
    row.get_by_role("button", name="Replace").click()
    dialog = blotter.locator("dialog#replace-dialog")
    expect(dialog).to_be_visible()
    # Prefilled as the blotter shows the price (a whole price without its ".0").
    expect(blotter.locator("#replace-price")).to_have_value(
        views.price(Decimal(original["price"])))
    expect(blotter.locator("#replace-price")).to_be_focused()
    new_price = _passive_price(server, "0.96")
    blotter.fill("#replace-price", new_price)
    blotter.fill("#replace-qty", "0.002")
    with blotter.expect_response(lambda r: r.url.endswith(f"/ui/orders/{original['id']}"
                                                          "/replace")):
        blotter.keyboard.press("Enter")  # submits the form
    expect(dialog).to_be_hidden()
    expect(blotter.locator("#toasts")).to_contain_text(f"at {new_price}")
    successor = blotter.locator('#blotter tr[data-coid="live-replace-button.r1"]')
    expect(successor).to_have_count(1)
    # As the blotter shows prices: a whole price without its ".0".
    expect(successor).to_contain_text(views.price(Decimal(new_price)))
    expect(successor).to_contain_text("0.002")
    expect(row.locator("td.status")).to_contain_text("canceled")
    sid = successor.get_attribute("data-order-id")
    expect(page.locator(f'#orders tr[data-order-id="{sid}"]')).to_have_count(1)
    expect(page.locator(f'#orders tr[data-order-id="{original["id"]}"]')).to_have_count(0)
    _not_reloaded(page, blotter)
    server.api("DELETE", f"/orders/{sid}")
    assert page.js_errors == [] and blotter.js_errors == []  # type: ignore[attr-defined]
