"""Order-book sequencing: Binance USD-M diff depth (U/u/pu against a REST snapshot's
lastUpdateId) and Bybit v5 orderbook (u/seq), on hand-made streams and the real Bybit
file; and what the paper venue does with a gap."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.domain.instruments import Instrument, InstrumentKind
from app.domain.market import BookDelta, BookInvalidated, BookSnapshot
from app.domain.orders import Order, OrderSpec, OrderType, Side
from app.domain.rejections import RejectCode
from app.marketdata import (
    BinanceDepthAssembler,
    BybitBookAssembler,
    assemble_binance_depth,
    default_data_dir,
    read_binance_depth,
    read_bybit_book,
)
from app.venues.base import Accepted, Filled, Rejected
from app.venues.paper.venue import PaperVenue

BYBIT = "bybit-xrpusdt-ob500-2024-12-01.jsonl"
T0_MS = 1_700_000_000_000
T0 = datetime.fromtimestamp(T0_MS / 1000, tz=UTC)
BN = {"venue": "paper-binance", "symbol": "BTC-PERP"}
XRP = {"venue": "paper-bybit", "symbol": "XRP-PERP"}


@pytest.fixture(scope="module")
def bybit_lines() -> list[str]:
    path = default_data_dir() / BYBIT
    if not path.is_file():
        pytest.skip(f"real market data not found at {path} (set PERPDESK_DATA_DIR)")
    return [line for line in path.read_text().splitlines() if line.strip()]


def kinds(updates: list[Any]) -> list[str]:
    names = {BookSnapshot: "snapshot", BookDelta: "delta", BookInvalidated: "invalid"}
    return [names[type(u)] for u in updates]


# ---- Binance USD-M diff depth ----------------------------------------------------------


def rest(last_id: int, ms: int = 0, bids=(("100.0", "1"),), asks=(("100.5", "1"),)) -> dict:
    """A /fapi/v1/depth answer (USD-M carries E and T)."""
    return {"lastUpdateId": last_id, "E": T0_MS + ms + 1, "T": T0_MS + ms,
            "bids": [list(b) for b in bids], "asks": [list(a) for a in asks]}


def event(first: int, last: int, previous: int, ms: int = 0, bids=(), asks=()) -> dict:
    """A depthUpdate event: U first update id, u final, pu the previous event's u."""
    return {"e": "depthUpdate", "E": T0_MS + ms + 2, "T": T0_MS + ms, "s": "BTCUSDT",
            "U": first, "u": last, "pu": previous,
            "b": [list(b) for b in bids], "a": [list(a) for a in asks]}


def test_binance_in_order_stream_yields_snapshot_then_deltas() -> None:
    book = BinanceDepthAssembler(**BN)
    out = book.on_snapshot(rest(100, bids=(("100.0", "1"), ("100.5", "2")),
                                asks=(("101.5", "1"), ("101.0", "3"))))
    out += book.on_event(event(95, 102, 94, ms=10, bids=(("100.5", "0"),)))  # straddles 100
    out += book.on_event(event(103, 105, 102, ms=20, asks=(("101.0", "4"),)))
    assert kinds(out) == ["snapshot", "delta", "delta"]
    snapshot, first, second = out
    assert snapshot.bids == ((Decimal("100.5"), Decimal(2)), (Decimal("100.0"), Decimal(1)))
    assert snapshot.asks == ((Decimal("101.0"), Decimal(3)), (Decimal("101.5"), Decimal(1)))
    assert snapshot.ts == T0  # T (transaction time), not E
    assert first.bids == ((Decimal("100.5"), Decimal(0)),)
    assert second.asks == ((Decimal("101.0"), Decimal(4)),)
    assert second.ts == T0 + timedelta(milliseconds=20)
    assert book.valid
    assert (book.stats.snapshots, book.stats.deltas, book.stats.gaps) == (1, 2, 0)


def test_binance_events_before_the_snapshot_are_buffered_and_old_ones_dropped() -> None:
    book = BinanceDepthAssembler(**BN)
    assert book.on_event(event(90, 94, 89, ms=-20)) == []  # u 94 < lastUpdateId: dropped
    assert book.on_event(event(95, 99, 94, ms=-10)) == []  # u 99 < 100: dropped
    assert book.on_event(event(100, 103, 99, ms=-5, bids=(("99.5", "7"),))) == []
    out = book.on_snapshot(rest(100))
    assert kinds(out) == ["snapshot", "delta"]
    assert out[1].bids == ((Decimal("99.5"), Decimal(7)),)
    # The buffered straddler happened before the REST answer's time: stamps never go back.
    assert out[1].ts == out[0].ts == T0
    assert book.stats.stale == 2


@pytest.mark.parametrize(("first", "last"), [(100, 100), (100, 101), (99, 100)])
def test_binance_first_event_may_touch_last_update_id_at_either_end(first: int, last: int
                                                                    ) -> None:
    book = BinanceDepthAssembler(**BN)
    book.on_snapshot(rest(100))
    assert kinds(book.on_event(event(first, last, first - 1))) == ["delta"]


def test_binance_first_event_after_the_snapshot_must_straddle_it() -> None:
    book = BinanceDepthAssembler(**BN)
    out = book.on_snapshot(rest(100))
    out += book.on_event(event(101, 104, 100, ms=5))  # U 101 > 100: 100..101 unaccounted
    assert kinds(out) == ["snapshot", "invalid"]
    assert out[1].reason == "first event U=101 is after the snapshot's lastUpdateId=100"
    assert out[1].ts == T0 + timedelta(milliseconds=5)
    assert not book.valid


def test_binance_stale_and_duplicate_events_are_dropped() -> None:
    book = BinanceDepthAssembler(**BN)
    book.on_snapshot(rest(100))
    assert kinds(book.on_event(event(98, 102, 97))) == ["delta"]
    assert book.on_event(event(98, 102, 97)) == []  # the same event again
    assert book.on_event(event(99, 101, 98)) == []  # inside what was applied
    assert kinds(book.on_event(event(103, 104, 102))) == ["delta"]
    assert book.stats.stale == 2 and book.stats.gaps == 0 and book.valid


def test_binance_gap_invalidates_until_a_new_snapshot_restores() -> None:
    book = BinanceDepthAssembler(**BN)
    out = book.on_snapshot(rest(100))
    out += book.on_event(event(99, 102, 98, ms=1))
    out += book.on_event(event(106, 108, 105, ms=2))  # pu 105 != u 102: 103..105 lost
    assert kinds(out) == ["snapshot", "delta", "invalid"]
    assert out[-1].reason == "gap: pu=105 but the last applied u=102"
    # Events keep coming in order, but there is no valid book to apply them to.
    assert book.on_event(event(109, 110, 108, ms=3)) == []
    assert book.on_event(event(111, 113, 110, ms=4, bids=(("100.0", "5"),))) == []
    assert not book.valid
    # A new snapshot at 112: buffered events up to 110 are older; 111..113 straddles it.
    out = book.on_snapshot(rest(112, ms=5))
    assert kinds(out) == ["snapshot", "delta"]
    assert out[1].bids == ((Decimal("100.0"), Decimal(5)),)
    assert book.valid
    assert kinds(book.on_event(event(114, 115, 113, ms=6))) == ["delta"]
    assert book.stats.gaps == 1


def test_binance_snapshot_older_than_the_book_is_dropped() -> None:
    book = BinanceDepthAssembler(**BN)
    book.on_snapshot(rest(100))
    book.on_event(event(99, 110, 98))
    assert book.on_snapshot(rest(105)) == []
    assert book.on_snapshot(rest(110)) == []
    assert kinds(book.on_snapshot(rest(120, ms=1))) == ["snapshot"]
    assert book.stats.stale == 2


def test_binance_time_falls_back_to_event_time_and_is_required_somewhere() -> None:
    book = BinanceDepthAssembler(**BN)
    snapshot = {"lastUpdateId": 5, "bids": [], "asks": []}
    with pytest.raises(ValueError, match="needs a time"):
        book.on_snapshot(snapshot)
    (out,) = book.on_snapshot(snapshot, ts=T0)
    assert out.ts == T0
    message = event(5, 6, 4, ms=30)
    del message["T"]
    (delta,) = book.on_event(message)
    assert delta.ts == T0 + timedelta(milliseconds=32)  # E


def test_binance_recording_file_with_combined_stream_wrappers(tmp_path: Path) -> None:
    lines = [
        {"stream": "btcusdt@depth", "data": event(98, 99, 97, ms=-5)},
        event(100, 101, 99, ms=1),
        rest(100, ms=2),
        {"stream": "btcusdt@depth", "data": event(102, 103, 101, ms=3)},
        event(105, 106, 104, ms=4),
    ]
    path = tmp_path / "depth.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    out = list(read_binance_depth(path, **BN))
    assert kinds(out) == ["snapshot", "delta", "delta", "invalid"]
    stamps = [u.ts for u in out]
    assert stamps == sorted(stamps)
    with pytest.raises(ValueError, match="not a Binance depth"):
        list(assemble_binance_depth([{"e": "trade"}], **BN))


# ---- Bybit v5 orderbook ------------------------------------------------------------------


def bybit(kind: str, u: int, seq: int, ms: int = 0, bids=(), asks=()) -> dict:
    return {"topic": "orderbook.50.XRPUSDT", "type": kind, "ts": T0_MS + ms,
            "data": {"s": "XRPUSDT", "b": [list(b) for b in bids],
                     "a": [list(a) for a in asks], "u": u, "seq": seq}}


def feed(messages: list[dict]) -> tuple[list[Any], BybitBookAssembler]:
    book = BybitBookAssembler(**XRP)
    out = [update for message in messages for update in book.on_message(message)]
    return out, book


def test_bybit_real_file_replays_with_no_gap(bybit_lines: list[str]) -> None:
    out, book = feed([json.loads(line) for line in bybit_lines])
    assert kinds(out) == ["snapshot"] + ["delta"] * 49
    assert (book.stats.snapshots, book.stats.deltas, book.stats.gaps, book.stats.stale,
            book.stats.waiting) == (1, 49, 0, 0, 0)
    assert book.valid


def test_bybit_real_file_with_a_lost_delta_is_invalid_until_a_snapshot(
        bybit_lines: list[str], tmp_path: Path) -> None:
    messages = [json.loads(line) for line in bybit_lines]
    lost = messages[10]["data"]["u"]
    kept = messages[:10] + messages[11:]
    path = tmp_path / "gap.jsonl"
    path.write_text("\n".join(json.dumps(m) for m in kept))
    out = list(read_bybit_book(path, **XRP))
    assert kinds(out) == ["snapshot"] + ["delta"] * 9 + ["invalid"]
    assert out[-1].reason == f"gap: u={lost + 1} after u={lost - 1}"
    assert out[-1].ts == datetime.fromtimestamp(messages[11]["ts"] / 1000, tz=UTC)

    # A fresh snapshot (as Bybit sends after trouble) makes the book usable again.
    last = messages[-1]
    restart = {**messages[0], "ts": last["ts"] + 100,
               "data": {**messages[0]["data"], "u": last["data"]["u"] + 1,
                        "seq": last["data"]["seq"] + 1}}
    follow = {**last, "ts": last["ts"] + 200,
              "data": {**last["data"], "u": last["data"]["u"] + 2,
                       "seq": last["data"]["seq"] + 2}}
    out, book = feed([*kept, restart, follow])
    assert kinds(out) == ["snapshot"] + ["delta"] * 9 + ["invalid", "snapshot", "delta"]
    assert book.stats.waiting == 38 and book.valid


def test_bybit_duplicate_and_stale_deltas_are_dropped(bybit_lines: list[str]) -> None:
    messages = [json.loads(line) for line in bybit_lines]
    clean, _ = feed(messages)
    noisy = [*messages[:6], messages[5], messages[3], *messages[6:]]  # a repeat, a late copy
    out, book = feed(noisy)
    assert out == clean
    assert book.stats.stale == 2 and book.stats.gaps == 0


def test_bybit_delta_with_seq_not_increasing_is_stale() -> None:
    out, book = feed([
        bybit("snapshot", 10, 1000, bids=(("0.5", "1"),), asks=(("0.6", "1"),)),
        bybit("delta", 11, 1000, ms=1, bids=(("0.5", "2"),)),  # seq did not move
        bybit("delta", 11, 1010, ms=2, bids=(("0.5", "3"),)),
    ])
    assert kinds(out) == ["snapshot", "delta"]
    assert out[1].bids == ((Decimal("0.5"), Decimal(3)),)
    assert book.stats.stale == 1


def test_bybit_u_1_is_a_restart_snapshot_even_as_a_delta() -> None:
    out, book = feed([
        bybit("snapshot", 500, 9000, bids=(("0.5", "1"),), asks=(("0.6", "1"),)),
        bybit("delta", 501, 9001, ms=1, bids=(("0.5", "2"),)),
        # Bybit: "occasionally you'll receive u=1, which is snapshot data due to the
        # restart of the service; overwrite your local orderbook".
        bybit("delta", 1, 9002, ms=2, bids=(("0.49", "4"),), asks=(("0.61", "1"),)),
        bybit("delta", 2, 9003, ms=3, asks=(("0.61", "0"),)),
    ])
    assert kinds(out) == ["snapshot", "delta", "snapshot", "delta"]
    assert out[2].bids == ((Decimal("0.49"), Decimal(4)),)
    assert book.stats.gaps == 0


def test_bybit_snapshot_resets_and_an_older_snapshot_is_dropped() -> None:
    out, book = feed([
        bybit("snapshot", 10, 1000),
        bybit("delta", 12, 1020, ms=1),  # 11 lost
        bybit("delta", 13, 1030, ms=2),  # dropped: no valid book
        bybit("snapshot", 9, 990, ms=3),  # older than what we had: dropped
        bybit("snapshot", 20, 1100, ms=4),
        bybit("delta", 21, 1110, ms=5),
    ])
    assert kinds(out) == ["snapshot", "invalid", "snapshot", "delta"]
    assert (book.stats.gaps, book.stats.stale, book.stats.waiting) == (1, 1, 1)


def test_bybit_unknown_message_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown Bybit message type"):
        feed([bybit("partial", 1, 1)])


# ---- the paper venue on a sequenced feed --------------------------------------------------


def test_paper_venue_refuses_market_orders_from_a_bybit_gap_to_the_next_snapshot(
        bybit_lines: list[str]) -> None:
    venue = PaperVenue("paper-bybit")
    venue.add_instrument(Instrument("XRP-PERP", "paper-bybit", InstrumentKind.PERP, "XRP",
                                    "USDT", Decimal("0.0001"), Decimal("0.1"),
                                    Decimal("0.1"), Decimal(0)))
    messages = [json.loads(line) for line in bybit_lines]
    out, _ = feed(messages[:10] + messages[11:])
    for update in out:
        venue.on_market(update, update.ts)
    now = out[-1].ts
    spec = OrderSpec("alice", "paper-bybit", "XRP-PERP", Side.BUY, OrderType.MARKET,
                     Decimal(10))
    reports = venue.submit(Order(1, spec, "c1", now), now)
    assert [type(r) for r in reports] == [Rejected]
    assert reports[0].code == RejectCode.BOOK_NOT_READY

    snapshot = {**messages[0], "ts": messages[-1]["ts"] + 100,
                "data": {**messages[0]["data"], "u": messages[-1]["data"]["u"] + 1,
                         "seq": messages[-1]["data"]["seq"] + 1}}
    (update,) = BybitBookAssembler(**XRP).on_message(snapshot)
    venue.on_market(update, update.ts)
    reports = venue.submit(Order(2, spec, "c2", update.ts), update.ts)
    assert [type(r) for r in reports][:2] == [Accepted, Filled]
