"""The pages at 1366x768, measured in Chromium (element boxes and
``document.elementFromPoint``, not by eye): every column header of the order, position,
trade, kill-switch and audit tables is inside the viewport and not covered by another
element, and so is every order's status badge; the order details drawer opens from the
order id."""

from __future__ import annotations

from decimal import Decimal

import pytest
from browser_support import Server, login, screenshot_path, wait_live
from playwright.sync_api import Page, expect

PAGES = ("/", "/orders", "/positions", "/trades", "/controls", "/audit")
TABLES = ("#orders table", "#blotter table", "#positions table", "#exits table",
          "#trade-history", "#controls table", "table#audit", "#marks table")

# For each header (and status badge) in the tables: scrolled into view vertically,
# is its box inside the viewport, and is the element at its centre the header itself
# (or inside it)? Hidden elements (display: none) are not columns.
MEASURE = """(selectors) => {
  const problems = [];
  const W = window.innerWidth, H = window.innerHeight;
  function check(el, what) {
    if (el.getClientRects().length === 0) return;  // not rendered
    el.scrollIntoView({block: 'center', inline: 'nearest'});
    const r = el.getBoundingClientRect();
    if (r.left < -0.5 || r.right > W + 0.5 || r.top < -0.5 || r.bottom > H + 0.5) {
      problems.push(`${what}: box [${Math.round(r.left)}, ${Math.round(r.right)}] x `
        + `[${Math.round(r.top)}, ${Math.round(r.bottom)}] is outside the ${W}x${H} viewport`);
      return;
    }
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (!hit || !(hit === el || el.contains(hit))) {
      const who = hit ? (hit.tagName.toLowerCase() + (hit.id ? '#' + hit.id : '')
        + (hit.className ? '.' + String(hit.className).split(' ').join('.') : '')
        + ' "' + (hit.textContent || '').trim().slice(0, 30) + '"') : 'nothing';
      problems.push(`${what}: covered by ${who}`);
    }
  }
  for (const sel of selectors) {
    for (const table of document.querySelectorAll(sel)) {
      table.querySelectorAll(':scope > thead th').forEach((th, i) => {
        check(th, `${sel} header ${i + 1} "${th.textContent.trim() || '(actions)'}"`);
      });
      table.querySelectorAll(':scope > tbody td.status .badge').forEach((badge) => {
        const row = badge.closest('tr');
        check(badge, `${sel} status of order ${row.dataset.orderId}`);
      });
    }
  }
  window.scrollTo(0, 0);
  return problems;
}"""


def _order(server: Server, **fields: str) -> dict:
    body = {"client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP", "side": "buy",
            "type": "limit", "qty": "0.001", **fields}
    status, order = server.api("POST", "/orders", body)
    assert status in (200, 201, 400), (status, order)
    return order if status != 400 else order["error"]["details"]["order"]


@pytest.fixture(scope="module")
def busy_desk(server: Server) -> Server:
    """A desk with a bit of everything: resting, filled, rejected, canceled and stop
    orders with long labels, positions on both venues, a closed trade and a kill switch
    on one account."""
    status, markets = server.api("GET", "/markets")
    assert status == 200, markets
    btc = next(m for m in markets if m["symbol"] == "BTC-PERP" and m["venue"] == "paper-bybit")
    bid, ask = Decimal(btc["bid"]), Decimal(btc["ask"])
    below = str((bid * Decimal("0.9")).quantize(Decimal("0.1")))
    above = str((ask * Decimal("1.1")).quantize(Decimal("0.1")))
    _order(server, type="market", qty="0.002")
    _order(server, client="demo-2", venue="paper-bybit", symbol="ETH-PERP", side="sell",
           type="market", qty="0.05")
    _order(server, client="demo-2", venue="paper-bybit", symbol="XRP-PERP", type="market",
           qty="100")
    _order(server, client="demo-2", venue="paper-bybit", symbol="XRP-PERP", side="sell",
           type="market", qty="100")
    _order(server, venue="paper-bybit", price=below, post_only="true",
           client_order_id="layout-resting-with-a-long-client-id")
    _order(server, venue="paper-bybit", type="stop_limit", price=above, trigger_price=above,
           time_in_force="gtc", client_order_id="layout-stop")
    _order(server, price="1.05", client_order_id="layout-off-tick")  # rejected
    canceled = _order(server, price=below, client_order_id="layout-canceled")
    server.api("DELETE", f"/orders/{canceled['id']}")
    status, body = server.api("POST", "/controls/reduce-only",
                              {"client": "demo-2", "venue": "paper-bybit",
                               "reason": "layout test: a restricted account"})
    assert status == 200, body
    return server


@pytest.mark.parametrize("path", PAGES)
def test_every_column_header_is_on_screen_at_1366(page: Page, busy_desk: Server,
                                                  path: str) -> None:
    login(page, busy_desk, "op", path)
    wait_live(page)
    if path in ("/", "/orders"):
        table = "#orders" if path == "/" else "#blotter"
        expect(page.locator(f"{table} tbody tr[data-order-id]").first).to_be_visible()
    if path in ("/", "/positions"):
        expect(page.locator("#positions tbody tr[data-symbol]").first).to_be_visible()
    page.wait_for_timeout(300)  # layout (and the chart's autoSize) settles
    scroll_width, inner_width = page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"{path}: the page scrolls sideways ({scroll_width})"
    found = page.evaluate("(sels) => sels.filter(s => document.querySelector(s)).length",
                          list(TABLES))
    assert found >= 1, f"{path}: none of the tables {TABLES}"
    problems = page.evaluate(MEASURE, list(TABLES))
    page.screenshot(path=str(screenshot_path(f"layout_1366{path.replace('/', '_')}")),
                    full_page=True)
    assert problems == [], f"{path} at 1366x768:\n" + "\n".join(problems)


def test_rejected_and_filled_orders_differ_without_scrolling(page: Page,
                                                             busy_desk: Server) -> None:
    login(page, busy_desk, "op", "/orders")
    wait_live(page)
    rejected = page.locator('#blotter tr[data-coid="layout-off-tick"]')
    expect(rejected.locator("td.status .badge")).to_have_text("rejected")
    expect(rejected.locator("td.reason")).to_have_text("PRICE_NOT_ON_TICK")
    filled = page.locator("#blotter tr.status-filled").first
    expect(filled.locator("td.status .badge")).to_have_text("filled")
    colors = [row.locator("td.status .badge").evaluate(
        "b => getComputedStyle(b).backgroundColor") for row in (rejected, filled)]
    assert colors[0] != colors[1], f"rejected and filled badges share a color: {colors}"
    # The TIF is shown whole (it used to be clipped to "GT").
    expect(page.locator('#blotter tr[data-coid="layout-stop"]')).to_contain_text("GTC")


def test_the_order_id_opens_its_details(page: Page, busy_desk: Server) -> None:
    login(page, busy_desk, "viewer", "/orders")
    wait_live(page)
    row = page.locator('#blotter tr[data-coid="layout-off-tick"]')
    button = row.locator("button.order-details")
    button.focus()
    page.keyboard.press("Enter")
    drawer = page.locator("dialog#drawer")
    expect(drawer).to_be_visible()
    expect(drawer).to_contain_text("PRICE_NOT_ON_TICK")
    expect(drawer).to_contain_text("layout-off-tick")
    expect(drawer).to_contain_text("tick size 0.1")  # the full message, not only the code
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    assert page.evaluate("document.activeElement.classList.contains('order-details')")
    assert page.js_errors == []  # type: ignore[attr-defined]
