"""Alerts and client scope: a user limited to some clients never sees another client's
positions in an alert — not in the feed, not on /ws, not on the dashboard — and an
alert without a client (shown to everyone) names no client.

Runs the whole app (starlette's test client, lifespan included) on a fresh SQLite
file with no market feed: the tests push the market data they need.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.auth.principal import Role
from app.config import Settings
from app.domain.commands import CancelAll
from app.domain.market import BookSnapshot, MarkPrice, Quote
from app.server import create_app
from tests.api.conftest import ws_silent

with warnings.catch_warnings():  # starlette nags about httpx2; httpx is what we test with
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient, WebSocketTestSession

D = Decimal
VENUES = ("paper-binance", "paper-bybit")
CLIENTS = ("demo", "demo-2")
PASSWORD = "scoped-password-123"


class App:
    def __init__(self, client: TestClient):
        self.client = client
        self.system = client.app.state.system
        auth = client.app.state.auth
        self.keys = {"admin": auth.create_key(Role.ADMIN, name="admin"),
                     "scoped": auth.create_key(Role.OPERATOR, name="scoped", clients="demo")}
        auth.add_user("scoped-user", Role.OPERATOR, PASSWORD, clients="demo")

    def call(self, method: str, path: str, who: str = "admin", **kwargs: Any) -> Any:
        r = self.client.request(method, f"/api/v1{path}",
                                headers={"Authorization": f"Bearer {self.keys[who]}"},
                                **kwargs)
        assert r.status_code < 300, (r.status_code, r.text)
        return r.json()

    def push(self, *updates: Any) -> None:
        for update in updates:
            self.client.portal.call(self.system.on_market, update)
        # FIFO bus: a no-op command queued now resolves after all of the above.
        self.client.portal.call(self.system.bus.execute,
                                CancelAll(client="__barrier__", actor="tests"))

    def quote(self, venue: str = "paper-binance", bids: bool = True) -> None:
        now = datetime.now(UTC)
        if bids:
            self.push(Quote(venue, "BTC-PERP", D("60000.0"), D(1), D("60000.1"), D(1), now),
                      MarkPrice(venue, "BTC-PERP", D("60000.0"), now))
        else:  # nobody to sell to: closing a long fails
            self.push(BookSnapshot(venue, "BTC-PERP", (), ((D("60000.1"), D(1)),), now),
                      MarkPrice(venue, "BTC-PERP", D("60000.0"), now))

    def buy(self, client: str, venue: str = "paper-binance", qty: str = "0.001") -> None:
        self.call("POST", "/orders", json={"client": client, "venue": venue,
                                           "symbol": "BTC-PERP", "side": "buy",
                                           "type": "market", "qty": qty})

    def ws(self, who: str) -> WebSocketTestSession:
        return self.client.websocket_connect(
            "/ws?topics=alerts,trading_states",
            headers={"Authorization": f"Bearer {self.keys[who]}"})


def recv(ws: WebSocketTestSession, timeout: float = 5.0) -> dict | None:
    """The next message, or None when nothing comes within ``timeout``."""
    return ws_silent(ws, timeout)


def drain(ws: WebSocketTestSession, until: str, limit: int = 50) -> list[dict]:
    """Messages up to and including the first alert titled ``until`` (quiet after it:
    everything a commit publishes comes in one burst)."""
    out: list[dict] = []
    for _ in range(limit):
        message = recv(ws)
        assert message is not None, f"no {until!r} alert; got {out}"
        out.append(message)
        if message.get("type") == "Alert" and message["data"]["title"] == until:
            break
    while (message := recv(ws, 0.3)) is not None:
        out.append(message)
    return out


def names_a_client(text: str, client: str) -> bool:
    """``client`` as a whole name in ``text`` ("demo" is not in "demo-2")."""
    return re.search(rf"(?<![\w-]){re.escape(client)}(?![\w-])", text) is not None


# The built-in clients, but demo-2 with 100 USDT a venue: a small position takes most
# of its margin (the built-in limits allow at most 0.01 BTC).
CONFIG = """
clients:
- {name: demo, leverage: '5', deposits: {paper-binance: '20000', paper-bybit: '20000'}}
- {name: demo-2, leverage: '5', deposits: {paper-binance: '100', paper-bybit: '100'}}
"""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    config = tmp_path / "perpdesk.yaml"
    config.write_text(CONFIG)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'alerts.db'}", config=config,
                        migrate=True, feed="none", demo_credentials=False, rate_limit_per_s=0,
                        session_secret="perpdesk-alert-tests-fixed-session-secret-0123456",
                        stale_mark_seconds=3600.0)
    with TestClient(create_app(settings)) as client:
        yield App(client)


def test_an_incomplete_global_close_all_is_alerted_per_client(app: App) -> None:
    app.quote()
    app.buy("demo")
    app.buy("demo-2")
    app.quote(bids=False)
    with app.ws("scoped") as scoped, app.ws("admin") as admin:
        assert recv(scoped)["type"] == "ready" and recv(admin)["type"] == "ready"
        body = app.call("POST", "/controls/close-all", json={"reason": "flatten now"})
        assert sorted((r["client"], r["status"]) for r in body["results"]) == [
            ("demo", "failed"), ("demo-2", "failed")]
        seen_scoped = drain(scoped, "Close-all incomplete")
        seen_admin = drain(admin, "Close-all incomplete")

    # The feed: one alert per client, each naming only its own positions.
    incomplete = [a for a in app.system.alerts.feed if a.title == "Close-all incomplete"]
    assert sorted(a.client for a in incomplete) == ["demo", "demo-2"]
    for alert in incomplete:
        other = next(c for c in CLIENTS if c != alert.client)
        assert alert.level == "critical"
        assert names_a_client(alert.message, alert.client), alert.message
        assert "paper-binance BTC-PERP" in alert.message
        assert not names_a_client(alert.message, other), alert.message

    # What the demo-scoped reader gets: its own alert, nothing of demo-2's.
    scoped_alerts = [m for m in seen_scoped if m["type"] == "Alert"]
    assert [(m["client"], m["data"]["title"]) for m in scoped_alerts
            if m["data"]["title"] == "Close-all incomplete"] == [
        ("demo", "Close-all incomplete")]
    assert not [m for m in seen_scoped if names_a_client(repr(m), "demo-2")], seen_scoped
    assert not [a for a in app.system.alerts.recent(["demo"])
                if names_a_client(a.message, "demo-2")]
    # An unscoped reader gets both.
    assert sorted(m["client"] for m in seen_admin if m.get("type") == "Alert"
                  and m["data"]["title"] == "Close-all incomplete") == ["demo", "demo-2"]
    assert {a.client for a in app.system.alerts.recent(None)
            if a.title == "Close-all incomplete"} == {"demo", "demo-2"}

    # The dashboard of a user scoped to demo.
    r = app.client.post("/login", data={"name": "scoped-user", "password": PASSWORD,
                                        "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = app.client.get("/").text
    feed = page[page.index('<ul id="alerts"'):]
    feed = feed[:feed.index("</ul>")]
    assert "Close-all incomplete" in feed
    assert not names_a_client(feed, "demo-2"), feed


def test_alerts_without_a_client_name_none(app: App) -> None:
    """Every kind of alert, raised about demo-2 where it can be: those shown to everyone
    (no client) name no client; those about demo-2 reach no demo-scoped reader."""
    app.quote()
    app.quote("paper-bybit")
    # The once-a-second housekeeping may have found BTC unmarked before the quotes (a
    # slow start): resolve that now, so the stale mark below is a new alert.
    app.client.portal.call(_check_marks, app.system)
    with app.ws("scoped") as scoped:
        assert recv(scoped)["type"] == "ready"
        # Margin utilization above 20 % / 50 % (per account, client set): 0.005 BTC is
        # 300 USDT, 60 of margin at leverage 5, out of 100.
        app.buy("demo-2", qty="0.005")
        # Kill switches: client, venue and global scopes.
        app.call("POST", "/controls/reduce-only", json={"client": "demo-2", "reason": "r1"})
        app.call("POST", "/controls/disable-trading",
                 json={"venue": "paper-bybit", "reason": "venue maintenance"})
        app.call("POST", "/controls/enable-trading",
                 json={"venue": "paper-bybit", "reason": "venue back"})
        # A close-all that cannot flatten demo-2's position, per venue and globally.
        app.quote(bids=False)
        app.call("POST", "/controls/close-all",
                 json={"venue": "paper-binance", "reason": "venue close"})
        app.call("POST", "/controls/close-all", json={"reason": "all close"})
        # Stale marks (an instrument, not a client).
        app.system.settings.stale_mark_seconds = 0.0
        app.client.portal.call(_check_marks, app.system)
        seen = drain(scoped, "Stale mark", limit=500)  # waits for it (a loaded machine is slow)
        while (message := recv(scoped, 0.5)) is not None:
            seen.append(message)

    alerts = list(app.system.alerts.feed)
    titles = {a.title for a in alerts}
    assert {"Margin utilization", "Trading reduce-only", "Trading halted", "Trading active",
            "Close-all incomplete", "Stale mark"} <= titles, titles
    for alert in alerts:
        text = f"{alert.title} {alert.message}"
        if alert.client is None:
            assert not any(names_a_client(text, c) for c in CLIENTS), text
        else:
            others = [c for c in CLIENTS if c != alert.client]
            assert not any(names_a_client(text, c) for c in others), text
    assert not [a for a in app.system.alerts.recent(["demo"]) if a.client == "demo-2"]
    assert not [m for m in seen if names_a_client(repr(m), "demo-2")], seen
    assert {m["data"]["title"] for m in seen if m["type"] == "Alert"} >= {
        "Trading halted", "Trading active", "Stale mark"}  # the unscoped ones do arrive


async def _check_marks(system: Any) -> None:
    system.alerts.check_marks()
