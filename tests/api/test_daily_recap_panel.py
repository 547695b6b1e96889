"""The dashboard's daily recap panel without a browser (tests/web/test_daily_recap.py
drives it in Chromium): the page's first render holds the same recap as
``GET /api/v1/reports/daily``, scoped like it, for the day its picker chose; a bad
day falls back to today; the live view keeps the chosen day."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.auth.principal import Role
from app.services.recaps import recap_choice, recap_day

PASSWORD = "recap-password-123"


def _login(api, name: str, role: Role, clients: str = "") -> None:
    api.auth.add_user(name, role, PASSWORD, clients=clients)
    r = api.client.post("/login", data={"name": name, "password": PASSWORD, "next": "/"},
                        follow_redirects=False)
    assert r.status_code == 303, r.text


def _panel(html: str) -> dict[str, Any]:
    start = html.index('<div id="recap"')
    block = html[start:html.index("</dl>", start)]
    day = re.search(r'data-day="([^"]+)"', block)
    assert day is not None
    shown: dict[str, Any] = {"day": day.group(1)}
    for name in ("trades", "rejections"):
        found = re.search(rf'data-testid="recap-{name}"[^>]*>(\d+)<', block)
        assert found is not None, name
        shown[name] = int(found.group(1))
    for name in ("total_pnl", "win_rate", "max_drawdown", "sharpe"):
        found = re.search(rf'data-testid="recap-{name.replace("_", "-")}" data-value="([^"]*)"',
                          block)
        assert found is not None, name
        shown[name] = found.group(1) or None
    clients = re.search(r'class="muted recap-for">[^<]*· ([^<]+)</p>', block)
    shown["clients"] = clients.group(1).strip().split(", ") if clients else []
    return shown


def _api(api, day: str, client: str | None = None) -> dict[str, Any]:
    params = {"date": day, **({"client": client} if client else {})}
    r = api.ok(api.get("/api/v1/reports/daily", params=params))
    return {"day": r["date"], "trades": r["trades"], "rejections": r["rejections"],
            "total_pnl": r["total_pnl"], "win_rate": r["win_rate"],
            "max_drawdown": r["max_drawdown"], "sharpe": r["sharpe"],
            "clients": r["clients"]}


@pytest.fixture
def traded(market_api):
    """demo: two round trips (a loss at the spread, then a win) and a rejected order;
    demo-2: one round trip on paper-bybit."""
    api = market_api
    api.buy_market("0.002")
    api.sell_market("0.002")
    api.buy_market("0.002")
    api.push_btc(bid=Decimal("60100.0"), ask=Decimal("60100.1"), mark=Decimal("60100.0"))
    api.sell_market("0.002")
    assert api.order(side="buy", type="limit", qty="0.011", price="59000.0").status_code == 400
    api.buy_market("0.001", client="demo-2", venue="paper-bybit")
    api.sell_market("0.001", client="demo-2", venue="paper-bybit")
    api.settle()
    return api


def test_the_first_render_shows_the_apis_recap_of_every_visible_client(traded) -> None:
    _login(traded, "watch-all", Role.VIEWER)
    page = traded.client.get("/")
    assert page.status_code == 200
    shown = _panel(page.text)
    expected = _api(traded, shown["day"])
    assert shown == expected
    assert shown["trades"] == 3 and shown["rejections"] == 1
    assert {"demo", "demo-2"} <= set(shown["clients"])


def test_a_client_user_sees_only_their_clients_recap(traded) -> None:
    _login(traded, "demo-trader", Role.TRADER, clients="demo")
    shown = _panel(traded.client.get("/").text)
    assert shown == _api(traded, shown["day"], client="demo")
    assert shown["clients"] == ["demo"] and shown["trades"] == 2
    # What the trader's panel holds is not everyone's recap.
    assert _api(traded, shown["day"])["trades"] == 3


def test_the_picker_chooses_the_day_and_bad_days_fall_back_to_today(traded) -> None:
    _login(traded, "watch-days", Role.VIEWER)
    today = _panel(traded.client.get("/").text)["day"]
    yesterday = (date.fromisoformat(today) - timedelta(days=1)).isoformat()
    shown = _panel(traded.client.get("/", params={"recap": "yesterday"}).text)
    assert shown["day"] == yesterday and shown["trades"] == 0
    assert shown == _api(traded, yesterday)
    page = traded.client.get("/", params={"recap": yesterday})
    assert _panel(page.text)["day"] == yesterday
    # The live view is asked for the same day.
    assert f"recap={yesterday}" in page.text
    for bad in ("<script>", "2024-13-01", "1999-12-31", "x" * 5000, "today; drop"):
        page = traded.client.get("/", params={"recap": bad})
        assert page.status_code == 200 and _panel(page.text)["day"] == today, bad
        assert "<script>" not in page.text.split('<div id="recap"')[1][:2000]


def test_recap_choice_is_bounded() -> None:
    assert recap_choice(None) == "today" and recap_choice("yesterday") == "yesterday"
    assert recap_choice("2024-02-29") == "2024-02-29"
    for bad in ("2023-02-29", "3000-01-01", "1999-12-31", "", "today ", "2024-1-1",
                "２０２４-01-01"):
        assert recap_choice(bad) == "today", bad
    assert recap_day("yesterday", date(2024, 3, 1)) == date(2024, 2, 29)
    assert recap_day("2024-01-15", date(2024, 3, 1)) == date(2024, 1, 15)
    assert recap_day("today", datetime(2024, 3, 1).date()) == date(2024, 3, 1)


def _receive_text_within(api, ws, timeout: float) -> str:
    import anyio

    async def receive() -> dict:
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    try:
        message = ws.portal.call(receive)
    except TimeoutError:
        pytest.fail(f"no dashboard push within {timeout} s")
    ws._raise_on_close(message)
    return message.get("text", "")


def test_the_live_view_pushes_the_new_recap_after_a_trade(traded) -> None:
    _login(traded, "watch-live", Role.VIEWER)
    day = _panel(traded.client.get("/").text)["day"]
    with traded.client.websocket_connect(f"/ui/ws?page=dashboard&recap={day}") as ws:
        first = _receive_text_within(traded, ws, 10.0)
        assert 'id="recap"' in first and _panel(first)["trades"] == 3  # full render
        traded.buy_market("0.002")
        traded.sell_market("0.002")
        traded.settle()
        expected = _api(traded, day)
        assert expected["trades"] == 4
        shown: dict[str, Any] = {}
        for _ in range(40):  # pushes come at least once a second (the periodic refresh)
            text = _receive_text_within(traded, ws, 10.0)
            if 'id="recap"' in text:
                shown = _panel(text[text.index('<div id="recap"'):])
                if shown["trades"] == 4:
                    break
        assert shown == expected


def test_the_dashboard_renders_when_the_recap_cannot_be_read(traded, monkeypatch) -> None:
    from app.services import recaps

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("database is locked")

    monkeypatch.setattr(recaps, "daily_recap", broken)
    _login(traded, "watch-broken", Role.VIEWER)
    page = traded.client.get("/", params={"recap": "2024-01-15"})  # a day not read yet
    assert page.status_code == 200
    assert "The recap cannot be read now." in page.text
