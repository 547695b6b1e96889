"""The monitor's I/O layer against fakes: REST through httpx.MockTransport, the
WebSocket through a real local websockets server that drops the connection."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from rich.console import Console
from websockets.asyncio.server import serve

from app.monitor.live import (
    VIEWS,
    Monitor,
    MonitorOptions,
    close_reason,
    describe_failure,
    retry_phrase,
    unreachable_reason,
)
from app.monitor.render import render_screen

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

PORTFOLIO = {"clients": [], "total": {
    "name": "total", "equity": "20000.50000000", "wallet": "19999.90000000",
    "available": "19975.00000000", "margin_used": "24.00000000", "utilization_pct": "0.12",
    "realized_pnl": "0.00000000", "unrealized_pnl": "0.60000000", "fees": "0.10000000",
    "funding": "0.00000000", "capital": "20000.00000000", "pnl": "0.50000000",
    "pnl_pct": "0.0025"}}
POSITIONS = [{"client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP", "side": "long",
              "qty": "0.002", "avg_entry_price": "60000.1", "mark_price": "60300.1",
              "notional": "120.6", "unrealized_pnl": "0.60000000", "realized_pnl": "0",
              "fees": "0.06", "funding": "0", "margin": "24.12", "opened_at": None}]
TRADES = [{"trade_id": "demo:paper-bybit:ETH-PERP:1", "client": "demo", "venue": "paper-bybit",
           "symbol": "ETH-PERP", "direction": "short", "qty": "0.01", "entry_price": "3000",
           "exit_price": "3010", "realized_pnl": "-0.1", "fees": "0.03", "funding": "0",
           "net_pnl": "-0.13", "pnl_pct": "-0.4", "opened_at": "2024-03-01T10:00:00Z",
           "closed_at": "2024-03-01T11:00:00Z", "exit_reason": "close_all"}]
CONTROLS = [{"client": None, "venue": None, "scope": "global", "state": "reduce_only"}]
EVENTS = {"items": [{"seq": 1, "type": "FundsDeposited", "client": "demo",
                     "created_at": "2024-02-01T12:00:00Z", "data": {}}],
          "last_seq": 1, "more": False}
ROUTES = {"/api/v1/portfolio": PORTFOLIO, "/api/v1/positions": POSITIONS,
          "/api/v1/trades": TRADES, "/api/v1/controls": CONTROLS, "/api/v1/events": EVENTS}


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeApi:
    """Answers the five GETs the monitor makes; records each request."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status == 401:
            return httpx.Response(self.status, json={"error": {
                "code": "UNAUTHENTICATED", "message": "the API key is not valid or was revoked",
                "details": {}}})
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {
                "code": "INTERNAL", "message": "unexpected failure", "details": {}}})
        return httpx.Response(200, json=ROUTES[request.url.path])

    def paths(self) -> list[str]:
        return sorted(r.url.path.rsplit("/", 1)[-1] for r in self.requests)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self),
                                 base_url="http://perpdesk.test",
                                 headers={"Authorization": "Bearer k"})


def make_monitor(api: FakeApi, clock: FakeClock | None = None, console: Console | None = None,
                 url: str = "http://perpdesk.test", **options) -> Monitor:
    opts = MonitorOptions(url=url, key="k", **options)
    return Monitor(opts, http=api.client(), console=console, clock=clock or FakeClock())


def test_first_refresh_loads_every_view_and_builds_the_metrics():
    api, clock = FakeApi(), FakeClock()
    monitor = make_monitor(api, clock)

    asyncio.run(monitor.refresh(strict=True))

    assert api.paths() == ["controls", "events", "portfolio", "positions", "trades"]
    assert monitor.dirty == set()
    screen = monitor.screen(NOW)
    m = screen.metrics
    assert m is not None
    assert str(m.capital) == "20000.00000000"
    assert m.trades == 1 and m.wins == 0
    assert str(m.cumulative_pnl) == "-0.10000000"  # realized 0 − fees 0.1
    assert m.apr_pct is not None  # a month since the first deposit
    assert [p.symbol for p in screen.positions] == ["BTC-PERP"]
    assert [t.symbol for t in screen.exits] == ["ETH-PERP"]
    assert screen.status.trading == "global reduce_only"


def test_client_filter_goes_to_the_client_scoped_views_only():
    api = FakeApi()
    monitor = make_monitor(api, client="demo")
    asyncio.run(monitor.refresh())
    by_path = {r.url.path.rsplit("/", 1)[-1]: parse_qs(r.url.query.decode())
               for r in api.requests}
    for view in ("portfolio", "positions", "trades"):
        assert by_path[view]["client"] == ["demo"]
    assert "client" not in by_path["controls"]
    assert "client" not in by_path["events"]
    assert by_path["trades"]["limit"] == ["1000"]
    assert monitor.screen(NOW).show_client is False


def test_refetch_is_driven_by_messages_and_the_poll_clock():
    api, clock = FakeApi(), FakeClock()
    monitor = make_monitor(api, clock)
    asyncio.run(monitor.refresh())
    api.requests.clear()

    asyncio.run(monitor.refresh())  # nothing new, no time passed
    assert api.requests == []

    monitor.handle({"seq": 9, "topic": "trades", "type": "TradeClosed", "client": "demo",
                    "data": {}})
    monitor.handle({"seq": 10, "topic": "trading_states", "type": "TradingStateChanged",
                    "client": None, "data": {}})
    asyncio.run(monitor.refresh())
    assert api.paths() == ["controls", "portfolio", "trades"]
    api.requests.clear()

    clock.t += 2.0  # marks move without events: positions and portfolio are re-polled
    asyncio.run(monitor.refresh())
    assert api.paths() == ["portfolio", "positions"]
    api.requests.clear()

    clock.t += 30.0
    asyncio.run(monitor.refresh())
    assert api.paths() == ["portfolio", "positions", "trades"]
    api.requests.clear()

    # origin is looked up once: a later deposit does not move the APR clock
    monitor.handle({"seq": 11, "topic": "balances", "type": "FundsDeposited", "client": "demo",
                    "data": {}})
    asyncio.run(monitor.refresh())
    assert api.paths() == ["portfolio"]


def test_handle_tracks_seq_leg_outs_and_client_scope():
    monitor = make_monitor(FakeApi(), client="demo")
    monitor.dirty.clear()
    monitor.handle({"type": "ready", "seq": 5})
    assert monitor.connection == "live" and monitor.last_seq == 5
    assert monitor.dirty == set(VIEWS)
    monitor.dirty.clear()

    monitor.handle({"seq": 6, "topic": "alerts", "type": "LegOutDetected", "client": "demo",
                    "data": {}})
    monitor.handle({"seq": 6, "topic": "alerts", "type": "LegOutDetected", "client": "demo",
                    "data": {}})  # a replay overlap: counted once
    monitor.handle({"seq": 7, "topic": "alerts", "type": "LegOutDetected", "client": "demo-2",
                    "data": {}})  # another client's
    assert monitor.leg_outs == 1
    assert monitor.last_seq == 7

    monitor.handle({"seq": 8, "topic": "fills", "type": "OrderFilled", "client": "demo-2",
                    "data": {}})
    assert monitor.dirty == set()  # not our client
    monitor.handle({"seq": 9, "topic": "fills", "type": "OrderFilled", "client": "demo",
                    "data": {}})
    assert monitor.dirty == {"positions", "portfolio"}
    monitor.handle({"seq": 9, "derived": True, "topic": "portfolio", "type": "AccountUpdated",
                    "client": "demo", "data": {}})
    assert monitor.last_seq == 9
    assert "since=9" in monitor.ws_url()

    monitor.handle({"type": "resync", "since": 9})
    assert monitor.last_seq == 9


def test_ws_url_keeps_the_key_out_and_follows_the_scheme():
    monitor = Monitor(MonitorOptions(url="https://desk.example/perp/", key="secret"))
    assert monitor.ws_url() == "wss://desk.example/perp/ws"
    monitor.handle({"type": "ready", "seq": 42})
    assert monitor.ws_url() == "wss://desk.example/perp/ws?since=42"
    assert "secret" not in monitor.ws_url()


def test_a_bad_key_ends_the_program_with_a_message():
    api = FakeApi(status=401)
    console = Console(record=True, width=200)
    monitor = make_monitor(api, console=console)
    assert asyncio.run(monitor.run()) == 2
    out = console.export_text()
    assert "HTTP 401" in out and "not valid or was revoked" in out


def test_rest_errors_while_running_are_shown_and_retried():
    api, clock = FakeApi(), FakeClock()
    monitor = make_monitor(api, clock)
    asyncio.run(monitor.refresh())
    api.status = 500
    monitor.dirty.add("trades")
    asyncio.run(monitor.refresh())
    assert "trades" in monitor.dirty  # retried on the next tick
    assert monitor.rest_detail == ("REST: GET /api/v1/trades: HTTP 500 Internal Server "
                                   "Error: unexpected failure")
    assert monitor.screen(NOW).status.problems == (
        "REST: GET /api/v1/trades: HTTP 500 Internal Server Error: unexpected failure; "
        "retrying in 1 s",)
    assert monitor.trades  # the last good data stays on screen
    api.status = 200
    asyncio.run(monitor.refresh())
    assert monitor.rest_detail == "" and not monitor.dirty


def test_once_prints_a_snapshot_with_the_servers_sequence():
    """--once does not follow the stream, but asks it where the log is (its "ready")."""
    requests: list[tuple[str, str | None]] = []

    async def handler(ws):
        requests.append((ws.request.path, ws.request.headers.get("Authorization")))
        await ws.send(json.dumps({"type": "ready", "seq": 4217}))
        await ws.wait_closed()

    async def scenario() -> tuple[int, str]:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            console = Console(record=True, width=100)
            monitor = make_monitor(FakeApi(), console=console, url=f"http://127.0.0.1:{port}")
            code = await monitor.run(once=True)
            return code, console.export_text()

    code, out = asyncio.run(scenario())
    assert code == 0
    assert "Capital: $20,000.00" in out
    assert "BTC-PERP" in out and "+$0.60" in out
    assert "ETH-PERP" in out and "-$0.13" in out and "close_all" in out
    assert "■ SNAPSHOT | seq 4217 |" in out
    assert requests == [("/ws", "Bearer k")]  # no since=, the key in the header


def test_once_without_the_stream_says_the_sequence_is_unknown():
    port = closed_port()
    console = Console(record=True, width=100)
    monitor = make_monitor(FakeApi(), console=console, url=f"http://127.0.0.1:{port}")
    assert asyncio.run(monitor.run(once=True)) == 0  # the snapshot itself is complete
    out = console.export_text()
    assert "seq —" in out and "seq 0" not in out
    assert (f"WebSocket: cannot connect to ws://127.0.0.1:{port}/ws (connection refused); "
            "sequence unknown") in out
    assert "retrying" not in out  # a snapshot does not retry


def closed_port() -> int:
    """A loopback port nothing listens on (connecting to it is refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_sequence_is_unknown_until_the_server_says_it():
    monitor = make_monitor(FakeApi())
    assert monitor.screen(NOW).status.last_seq is None
    monitor.handle({"type": "ready", "seq": 0})  # an empty log: a real 0
    assert monitor.screen(NOW).status.last_seq == 0
    monitor.handle({"seq": 3, "topic": "fills", "type": "OrderFilled", "client": "demo",
                    "data": {}})
    assert monitor.screen(NOW).status.last_seq == 3


def test_a_server_that_is_down_is_one_readable_line():
    """REST and the WebSocket both refused: one line that says where, why and when next,
    in full on an 80-column terminal."""
    port = closed_port()
    clock = FakeClock()
    base = f"http://127.0.0.1:{port}"

    async def scenario() -> Monitor:
        monitor = Monitor(MonitorOptions(url=base, key="k", backoff_initial=1.5),
                          console=Console(record=True, width=80), clock=clock)
        await monitor.refresh()
        task = asyncio.create_task(monitor.stream())
        try:
            async with asyncio.timeout(10):
                while monitor.ws_failure is None:
                    await asyncio.sleep(0.01)
        finally:
            monitor.quit.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await monitor.http.aclose()
        return monitor

    monitor = asyncio.run(scenario())
    assert monitor.rest_detail == f"REST: cannot connect to {base} (connection refused)"
    assert monitor.ws_failure is not None
    assert monitor.ws_failure.what == (
        f"cannot connect to ws://127.0.0.1:{port}/ws (connection refused)")
    line = (f"REST and WebSocket: cannot connect to {base} (connection refused); "
            "retrying in 1 s")  # REST retries on the next tick, before the socket
    assert monitor.problems() == (line,)
    clock.t += 1.0  # the REST retry is due; the socket's (1.5 s + jitter) is not
    assert monitor.problems() == (line.replace("in 1 s", "now"),)

    screen = monitor.screen(NOW)
    assert screen.status.connection == "reconnecting"
    c = Console(record=True, width=80)
    c.print(render_screen(screen))
    footer = c.export_text().rstrip("\n").splitlines()
    assert footer[-3].startswith("◌ RECONNECTING | seq — | 2024-03-01 12:00:00 UTC")
    assert " ".join(" ".join(footer[-2:]).split()) == line.replace("in 1 s", "now")


def test_failures_in_words():
    base = "http://127.0.0.1:8000"
    request = httpx.Request("GET", f"{base}/api/v1/portfolio")
    try:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as exc:
            raise httpx.ConnectError("[Errno -2] Name or service not known") from exc
    except httpx.ConnectError as exc:
        assert describe_failure(exc, base) == f"cannot connect to {base} (host not found)"
    refused = ConnectionRefusedError(111, "Connect call failed")
    assert unreachable_reason(refused) == "connection refused"
    assert describe_failure(httpx.ConnectTimeout("timed out", request=request), base) == (
        f"cannot connect to {base} (timed out)")
    assert describe_failure(httpx.ReadTimeout("", request=request), base) == (
        f"no answer from {base} within 10 s")
    response = httpx.Response(503, request=request, json={"error": {
        "code": "STORAGE_UNAVAILABLE", "message": "the event log is not writable",
        "details": {}}})
    error = httpx.HTTPStatusError("", request=request, response=response)
    assert describe_failure(error, base) == (
        "GET /api/v1/portfolio: HTTP 503 Service Unavailable: the event log is not writable")
    assert unreachable_reason(error) is None
    assert close_reason(1012) == "the server is restarting (1012)"
    assert close_reason(4008, "too slow") == "fell behind the stream (resyncing): too slow (4008)"
    assert close_reason(None) == "connection lost (1006)"
    assert retry_phrase(2.0) == "retrying in 2 s"
    assert retry_phrase(1.96) == "retrying in 2 s"
    assert retry_phrase(0.3) == "retrying in 1 s"
    assert retry_phrase(0.0) == retry_phrase(-1) == "retrying now"


def test_reconnects_with_backoff_and_since_the_last_seq():
    """The socket drops after seq 7: the monitor shows 'reconnecting', then reconnects
    with since=7 (key in the header, not the URL) and is live again."""
    connections: list[tuple[str, str | None]] = []

    async def handler(ws):
        connections.append((ws.request.path, ws.request.headers.get("Authorization")))
        if len(connections) == 1:
            await ws.send(json.dumps({"type": "ready", "seq": 5}))
            await ws.send(json.dumps({"seq": 6, "topic": "alerts", "type": "LegOutDetected",
                                      "client": "demo", "data": {}}))
            await ws.send(json.dumps({"seq": 7, "topic": "trades", "type": "TradeClosed",
                                      "client": "demo", "data": {}}))
            await asyncio.sleep(0.05)
            await ws.close(code=1011, reason="server going away")
            return
        await ws.send(json.dumps({"type": "ready", "seq": 7}))
        await ws.wait_closed()

    async def scenario() -> list[str]:
        seen: list[str] = []
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            monitor = Monitor(MonitorOptions(url=f"http://127.0.0.1:{port}", key="k",
                                             backoff_initial=0.3),
                              http=FakeApi().client())
            task = asyncio.create_task(monitor.stream())
            try:
                async with asyncio.timeout(10):
                    while len(connections) < 2 or monitor.connection != "live":
                        if not seen or seen[-1] != monitor.connection:
                            seen.append(monitor.connection)
                        await asyncio.sleep(0.005)
                seen.append(monitor.connection)
                assert monitor.leg_outs == 1
                assert monitor.last_seq == 7
                assert monitor.connects == 2
            finally:
                monitor.quit.set()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        return seen

    seen = asyncio.run(scenario())
    assert seen == ["connecting", "live", "reconnecting", "live"]
    assert connections[0] == ("/ws", "Bearer k")
    assert urlsplit(connections[1][0]).query == "since=7"
    assert connections[1][1] == "Bearer k"


@pytest.mark.parametrize("key", ["q", "Q"])
def test_keys_page_and_quit(key):
    monitor = make_monitor(FakeApi())
    start = monitor.step()
    monitor.on_key("n")
    monitor.on_key(" ")
    assert monitor.step() == start + 2
    monitor.on_key("p")
    assert monitor.step() == start + 1
    monitor.on_key("x")  # ignored
    assert not monitor.quit.is_set()
    monitor.on_key(key)
    assert monitor.quit.is_set()
