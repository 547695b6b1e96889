"""/ws: the live event stream — auth, message shape, topics, resume, scope, slow consumers."""

from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect

from app.api import ws as ws_module
from app.auth.principal import Role


def _is_event(message: dict) -> bool:
    """A logged event (not "ready"/"resync", not derived live state such as
    PositionUpdated, AccountUpdated or Alert)."""
    return "seq" in message and message.get("type") not in ("ready", "resync") and not (
        message.get("derived"))


def _collect_until(ws_recv, ws, seq: int, limit: int = 500, derived: list | None = None
                   ) -> list[dict]:
    """Read event messages until the one with ``seq`` (inclusive) arrives; derived
    messages are set aside in ``derived`` if given."""
    out: list[dict] = []
    for _ in range(limit):
        message = ws_recv(ws)
        if not _is_event(message):
            if derived is not None and message.get("derived"):
                derived.append(message)
            continue
        out.append(message)
        if message["seq"] == seq:
            return out
    pytest.fail(f"seq {seq} never arrived; got {[m.get('seq') for m in out]}")


def _expected(api, after: int, who: str = "admin", topics: set[str] | None = None) -> list:
    """What /ws should send after ``after``: the /events view, as (seq, type, client)."""
    from app.runtime.topics import topic_of

    items = api.events(after=after, who=who, limit=5000)["items"]
    return [(e["seq"], e["type"], e["client"]) for e in items
            if topics is None or topic_of(e["type"]) in topics]


# ---- authentication ---------------------------------------------------------------------------

@pytest.mark.parametrize("who", [None, "pdk_nope_nope", "garbage"])
def test_ws_requires_a_valid_key(api, who):
    with pytest.raises(WebSocketDisconnect) as exc, api.ws(who):
        pass
    assert exc.value.code == 4401


def test_ws_refuses_a_revoked_key(api):
    api.auth.revoke_key("viewer")
    with pytest.raises(WebSocketDisconnect) as exc, api.ws("viewer"):
        pass
    assert exc.value.code == 4401


@pytest.mark.parametrize("via", ["header", "query"])
def test_an_open_ws_is_closed_when_its_key_is_revoked(api, ws_recv, monkeypatch, via):
    monkeypatch.setattr(ws_module, "KEY_RECHECK_SECONDS", 0.1)
    key = api.auth.create_key(Role.VIEWER, name="soon-revoked")
    with (api.ws(key) if via == "header" else api.ws(None, key=key)) as ws, \
            api.ws("viewer") as other:
        assert ws_recv(ws)["type"] == "ready"
        assert ws_recv(other)["type"] == "ready"
        assert api.auth.revoke_key("soon-revoked") == 1
        message = ws_recv(ws, 5)
        assert message == {"type": "error", "code": "UNAUTHENTICATED",
                           "message": "the API key was revoked"}
        with pytest.raises(WebSocketDisconnect) as exc:
            ws_recv(ws)
        assert exc.value.code == 4401
        # A socket on another key keeps streaming.
        api.control("disable-trading")
        assert any(ws_recv(other)["type"] == "TradingStateChanged" for _ in range(20))


def test_ws_accepts_the_key_as_a_query_parameter(api, ws_recv):
    with api.ws(None, key=api.keys["viewer"]) as ws:
        assert ws_recv(ws)["type"] == "ready"


def test_ws_rejects_unknown_topics(api):
    with pytest.raises(WebSocketDisconnect) as exc, api.ws("viewer", topics="orders,gossip"):
        pass
    assert exc.value.code == 4400


def test_ws_rejects_a_since_that_is_not_a_number(api, ws_recv):
    """A malformed ``since`` should be a clean protocol close (4400), not a server error."""
    try:
        with api.ws("viewer", since="abc") as ws:
            message = ws_recv(ws)
            pytest.fail(f"a malformed since was accepted: {message}")
    except WebSocketDisconnect as exc:
        assert exc.code == 4400
    # (Any other exception — e.g. the server's own ValueError — fails the test.)


# ---- messages -----------------------------------------------------------------------------------

def test_order_and_fill_messages_arrive_after_a_post(market_api, ws_recv):
    api = market_api
    with api.ws("viewer") as ws:
        ready = ws_recv(ws)
        assert ready["type"] == "ready" and ready["seq"] == api.last_seq()
        order = api.buy_market()
        derived: list[dict] = []
        messages = _collect_until(ws_recv, ws, api.last_seq(), derived=derived)
        # The live state that follows the same commit (not part of the log).
        while not {"PositionUpdated", "AccountUpdated"} <= {d["type"] for d in derived}:
            m = ws_recv(ws)
            if m.get("derived"):
                derived.append(m)
    assert [(m["topic"], m["type"]) for m in messages] == [
        ("orders", "OrderSubmitted"), ("orders", "OrderAccepted"), ("fills", "OrderFilled")]
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(ready["seq"] + 1, ready["seq"] + 4))
    for m in messages:
        assert set(m) == {"seq", "topic", "type", "client", "data"}
        assert m["client"] == "demo"
        assert m["data"]["order_id"] == order["id"]
    fill = messages[-1]["data"]
    assert fill["qty"] == "0.001" and fill["price"] == "60000.1" and fill["side"] == "buy"
    # The same events, in the same order, as the log shows.
    assert [(m["seq"], m["type"], m["client"]) for m in messages] == _expected(
        api, ready["seq"])
    position = next(d for d in derived if d["type"] == "PositionUpdated")
    assert position["topic"] == "positions" and position["client"] == "demo"
    assert position["data"]["qty"] == "0.001" and position["data"]["symbol"] == "BTC-PERP"
    account = next(d for d in derived if d["type"] == "AccountUpdated")
    assert account["topic"] == "portfolio" and account["client"] == "demo"
    assert account["data"]["venue"] == "paper-binance"


def test_topics_filter(market_api, ws_recv, ws_silent):
    api = market_api
    with api.ws("viewer", topics="fills") as ws:
        assert ws_recv(ws)["type"] == "ready"
        api.place(price="59000.0")  # orders only: nothing for this subscriber
        first = api.buy_market()
        second = api.sell_market()
        got = [ws_recv(ws), ws_recv(ws)]
        assert ws_silent(ws) is None
    assert [(m["topic"], m["type"]) for m in got] == [("fills", "OrderFilled")] * 2
    assert [m["data"]["order_id"] for m in got] == [first["id"], second["id"]]


def test_trading_state_topic(api, ws_recv):
    with api.ws("viewer", topics="trading_states") as ws:
        assert ws_recv(ws)["type"] == "ready"
        api.ok(api.control("reduce-only", client="demo"))
        m = ws_recv(ws)
    assert m["topic"] == "trading_states" and m["type"] == "TradingStateChanged"
    assert m["data"]["state"] == "reduce_only"


def test_since_replays_exactly_the_events_after_it_then_continues_live(market_api, ws_recv):
    api = market_api
    api.buy_market()
    since = api.last_seq()
    api.place(price="59000.0")
    api.sell_market()
    api.place(client="demo-2", price="59000.0")
    backlog_expected = _expected(api, since)
    assert len(backlog_expected) == 8  # 2 + 4 (fill closes the trade) + 2

    with api.ws("admin", since=since) as ws:
        backlog = [ws_recv(ws) for _ in backlog_expected]
        ready = ws_recv(ws)
        assert ready["type"] == "ready"
        assert ready["seq"] == backlog_expected[-1][0]
        assert all(not m.get("derived") for m in backlog)
        live_order = api.buy_market()
        live = _collect_until(ws_recv, ws, api.last_seq())
    assert [(m["seq"], m["type"], m["client"]) for m in backlog] == backlog_expected
    seqs = [m["seq"] for m in backlog + live]
    assert seqs == list(range(since + 1, since + 1 + len(seqs))), "gap or duplicate"
    assert all(m["data"]["order_id"] == live_order["id"] for m in live)


def test_since_with_topics_replays_only_those_topics(market_api, ws_recv, ws_silent):
    api = market_api
    since = api.last_seq()
    api.buy_market()
    api.place(price="59000.0")
    api.sell_market()
    expected = _expected(api, since, topics={"fills"})
    assert len(expected) == 2
    with api.ws("viewer", since=since, topics="fills") as ws:
        backlog = [ws_recv(ws) for _ in expected]
        assert ws_recv(ws)["type"] == "ready"
        assert ws_silent(ws) is None
    assert [(m["seq"], m["type"], m["client"]) for m in backlog] == expected


def test_resume_of_a_long_backlog_has_no_gap(market_api, ws_recv, monkeypatch):
    """More events after ``since`` than one backlog page holds (BACKLOG_PAGE, 1,000 in
    production, 5 here so the test stays fast) must still all be delivered, or the
    client must be told to resync — never a silent gap."""
    api = market_api
    monkeypatch.setattr(ws_module, "BACKLOG_PAGE", 5)
    since = api.last_seq()
    for _ in range(3):
        api.buy_market()
        api.sell_market()
    assert api.last_seq() - since > 5 * 2  # well over one backlog read
    with api.ws("admin", since=since) as ws:
        messages = []
        live = None
        for _ in range(300):
            m = ws_recv(ws)
            if m["type"] == "resync":
                break  # an honest "reconnect with since=N" is acceptable too
            if m["type"] == "ready" and live is None:
                live = api.buy_market()
            if not _is_event(m):
                continue
            messages.append(m)
            if live is not None and m["seq"] == api.last_seq():
                break
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(since + 1, since + 1 + len(seqs))), (
        f"gap in the resumed stream: {seqs}")


# ---- client scope -------------------------------------------------------------------------------

def test_scoped_key_gets_no_messages_about_another_clients_orders(market_api, ws_recv):
    api = market_api
    with api.ws("scoped") as ws:
        assert ws_recv(ws)["type"] == "ready"
        api.buy_market(client="demo-2")
        api.place(client="demo-2", price="59000.0")
        sentinel = api.buy_market(client="demo")
        messages = _collect_until(ws_recv, ws, api.last_seq())
    assert {m["client"] for m in messages} == {"demo"}
    assert {m["data"]["order_id"] for m in messages} == {sentinel["id"]}


def test_scoped_key_backlog_has_no_other_client(market_api, ws_recv):
    api = market_api
    since = api.last_seq()
    api.buy_market(client="demo-2")
    api.buy_market(client="demo")
    expected = _expected(api, since, who="scoped")
    assert {c for _, _, c in expected} == {"demo"}
    with api.ws("scoped", since=since) as ws:
        backlog = [ws_recv(ws) for _ in expected]
        assert ws_recv(ws)["type"] == "ready"
    assert [(m["seq"], m["type"], m["client"]) for m in backlog] == expected


def test_scoped_key_gets_no_messages_about_another_clients_kill_switches(market_api, ws_recv):
    api = market_api
    with api.ws("scoped") as ws:
        assert ws_recv(ws)["type"] == "ready"
        api.sell_market(client="demo-2")
        api.ok(api.control("disable-trading", client="demo-2", reason="demo-2 only"))
        api.ok(api.control("close-all", client="demo-2", reason="demo-2 only"))
        sentinel = api.buy_market(client="demo")
        messages = _collect_until(ws_recv, ws, api.last_seq())
    leaked = [m for m in messages if "demo-2" in repr(m)]
    assert not leaked, f"a demo-scoped key got demo-2 messages: {[m['type'] for m in leaked]}"
    assert messages[-1]["data"]["order_id"] == sentinel["id"]


# ---- slow consumers ------------------------------------------------------------------------------

def test_slow_consumer_gets_resync_and_4008_then_resumes_without_gap(make_api, ws_recv):
    """With a queue of 5, one commit of more than 5 messages for a subscriber overflows it.
    (TestClient's transport never pushes back, so "not reading" alone cannot fill the
    queue; a cancel-all of 4 orders publishes 8 messages in one batch.)"""
    api = make_api(ws_queue_size=5)
    api.push_btc()
    api.push_all_marks()  # no stale-mark alerts competing for the small queue
    ids = [api.place(price=f"{59000 - i}.0")["id"] for i in range(4)]
    subscribers = api.system.broadcaster.count  # the server's own (e.g. the dashboard hub)
    with api.ws("viewer") as ws:
        ready = ws_recv(ws)
        assert ready["type"] == "ready"
        assert api.ok(api.delete("/api/v1/orders", "trader"))["count"] == 4
        received = []
        while True:
            m = ws_recv(ws)
            if m["type"] == "resync":
                break
            received.append(m)
        with pytest.raises(WebSocketDisconnect) as exc:
            ws_recv(ws)
        assert exc.value.code == 4008
    received = [x for x in received if _is_event(x)]
    assert 0 < len(received) < 8  # the queue held at most 5 of the 8 cancel events
    seqs = [x["seq"] for x in received]
    assert seqs == list(range(ready["seq"] + 1, ready["seq"] + 1 + len(seqs)))
    assert m["since"] == seqs[-1]
    assert api.system.broadcaster.count == subscribers  # the slow subscriber is gone

    # Reconnecting with since=N delivers the rest, with no gap and no duplicate.
    with api.ws("viewer", since=m["since"]) as ws:
        rest = []
        while True:
            x = ws_recv(ws)
            if x["type"] == "ready":
                break
            assert _is_event(x)
            rest.append(x)
    all_seqs = seqs + [x["seq"] for x in rest]
    assert all_seqs == list(range(ready["seq"] + 1, api.last_seq() + 1))
    canceled = [x["data"]["order_id"] for x in received + rest if x["type"] == "OrderCanceled"]
    assert sorted(canceled) == ids
