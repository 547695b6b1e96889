"""The dashboard's daily recap panel (seed 000 §3.2) in a real browser: it shows the
same figures as ``GET /api/v1/reports/daily`` for a day with trades, follows new trades
by push (no reload), switches day with its picker, and a client user's panel holds
only that client's recap."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from browser_support import Server, login, wait_live
from playwright.sync_api import Page, expect

FIELDS = ("total_pnl", "win_rate", "max_drawdown", "sharpe")  # data-value = the API's text


def _round_trip(server: Server, client: str, symbol: str, qty: str) -> None:
    for side in ("buy", "sell"):
        status, order = server.api("POST", "/orders", {
            "client": client, "venue": "paper-binance", "symbol": symbol, "side": side,
            "type": "market", "qty": qty})
        assert status == 201 and order["status"] == "filled", (status, order)


def _api_recap(server: Server, client: str | None = None, day: str | None = None
               ) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in (("client", client), ("date", day)) if v)
    status, body = server.api("GET", "/reports/daily" + (f"?{query}" if query else ""))
    assert status == 200, body
    return body


def _panel(page: Page) -> dict[str, Any]:
    """What the panel shows: its day, the exact value behind each figure, the counts."""
    recap = page.locator("#recap")
    shown = {"day": recap.get_attribute("data-day"),
             "trades": int(recap.get_by_test_id("recap-trades").inner_text()),
             "rejections": int(recap.get_by_test_id("recap-rejections").inner_text())}
    for name in FIELDS:
        value = recap.get_by_test_id(f"recap-{name.replace('_', '-')}").get_attribute(
            "data-value")
        shown[name] = value or None
    return shown


def _expected(api: dict[str, Any]) -> dict[str, Any]:
    return {"day": api["date"], "trades": api["trades"], "rejections": api["rejections"],
            **{name: api[name] for name in FIELDS}}


def _shows_the_api_recap(page: Page, server: Server, client: str | None = None
                         ) -> dict[str, Any]:
    """Wait until the panel shows what the API answers now (the panel is recomputed in
    the background; strategies may trade meanwhile, so both are read again until they
    agree), and return that recap."""
    expect(page.get_by_test_id("recap-trades")).to_be_visible()
    last: tuple[Any, Any] = (None, None)
    for _ in range(100):
        api = _api_recap(server, client)
        shown = _panel(page)
        if shown == _expected(api):
            return api
        last = (shown, _expected(api))
        page.wait_for_timeout(200)
    raise AssertionError(f"the panel never showed the API's recap: {last}")


def test_the_panel_shows_the_days_recap_as_the_api_and_follows_new_trades(
        page: Page, server: Server) -> None:
    _round_trip(server, "demo", "BTC-PERP", "0.002")
    _round_trip(server, "demo-2", "SOL-PERP", "0.5")
    login(page, server, "op", "/")
    wait_live(page)
    api = _shows_the_api_recap(page, server)
    assert api["trades"] >= 2
    # The figures as a person reads them: money to the cent, signed; the win rate in %.
    recap = page.locator("#recap")
    pnl = Decimal(api["total_pnl"]).quantize(Decimal("0.01"))
    text = "0.00" if not pnl else f"+{pnl:,f}" if pnl > 0 else f"{pnl:,f}"
    expect(recap.get_by_test_id("recap-total-pnl")).to_have_text(text)
    if api["win_rate"] is not None:
        rate = (Decimal(api["win_rate"]) * 100).quantize(Decimal("0.1"))
        expect(recap.get_by_test_id("recap-win-rate")).to_have_text(f"{rate}%")
    # A new round trip reaches the open page by push.
    page.evaluate("window.__notReloaded = true")
    before = api["trades"]
    _round_trip(server, "demo", "BTC-PERP", "0.002")
    after = _shows_the_api_recap(page, server)
    assert after["trades"] > before
    assert page.evaluate("window.__notReloaded") is True
    assert not page.js_errors  # type: ignore[attr-defined]


def test_the_day_picker_shows_another_day(page: Page, server: Server) -> None:
    _round_trip(server, "demo", "BTC-PERP", "0.002")
    login(page, server, "op", "/")
    wait_live(page)
    today = _shows_the_api_recap(page, server)["date"]
    with page.expect_navigation():
        page.locator("form.recap-day").get_by_role("link", name="Yesterday").click()
    assert page.url.endswith("/?recap=yesterday")
    yesterday = (date.fromisoformat(today) - timedelta(days=1)).isoformat()
    expect(page.locator("#recap")).to_have_attribute("data-day", yesterday)
    wait_live(page)  # the live view keeps the chosen day
    page.wait_for_timeout(1500)  # a periodic push or two
    expect(page.locator("#recap")).to_have_attribute("data-day", yesterday)
    api = _api_recap(server, day=yesterday)
    assert _panel(page) == _expected(api)
    # A day typed in the picker; a malformed one falls back to today.
    page.locator("form.recap-day input[name=recap]").fill(today)
    with page.expect_navigation():
        page.locator("form.recap-day").get_by_role("button", name="Show").click()
    expect(page.locator("#recap")).to_have_attribute("data-day", today)
    page.goto(f"{server.base_url}/?recap=%3Cscript%3E")
    expect(page.locator("#recap")).to_have_attribute("data-day", today)
    assert not page.js_errors  # type: ignore[attr-defined]


def test_a_client_user_sees_only_their_own_recap(page: Page, server: Server) -> None:
    # demo-2 trades too: the trader of client demo must not see it in the recap.
    _round_trip(server, "demo", "BTC-PERP", "0.002")
    _round_trip(server, "demo-2", "SOL-PERP", "0.5")
    login(page, server, "trader", "/")
    wait_live(page)
    mine = _shows_the_api_recap(page, server, client="demo")
    everyone = _api_recap(server)
    assert mine["clients"] == ["demo"] and set(everyone["clients"]) >= {"demo", "demo-2"}
    assert mine["trades"] < everyone["trades"]
    recap = page.locator("#recap")
    expect(recap.locator(".recap-for")).to_contain_text("demo")
    expect(recap.locator(".recap-for")).not_to_contain_text("demo-2")
    assert not page.js_errors  # type: ignore[attr-defined]
