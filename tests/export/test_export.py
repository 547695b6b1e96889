"""``perpdesk export`` on a realistic session written to a SQLite event log (the store
tests' session: fills, a rejection, a cancel, funding, a close-all) plus a SIZED_DOWN
and a margin window change: every JSON artifact validates against its JSON Schema,
the figures match the session, and the filters keep what they say."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq
import pytest

from app.backtest.report import TRADE_COLUMNS
from app.cli import main
from app.domain.risk import MarginSnapshot, MarginWindowChanged, OrderSizedDown, SizingMode
from app.export.artifacts import JSON_ARTIFACTS
from app.export.cli import SCHEMAS
from tests.store.test_event_log import BINANCE, at, open_log, run_session


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('export') / 'events.db'}"
    with open_log(url) as log:
        d, ids = run_session(log)
        order = d.engine.state.orders[ids["btc_buy"]]
        extra = [
            OrderSizedDown(ids["btc_buy"], "demo", BINANCE, "BTC-PERP", Decimal("1.5"),
                           order.spec.qty, None, Decimal("48.2"), Decimal("50"),
                           SizingMode.CONSERVATIVE, at(2)),
            MarginWindowChanged(BINANCE, None, "overnight", Decimal(2), Decimal("1.5"),
                                (MarginSnapshot("demo", Decimal("19000"), Decimal("0.05"),
                                                Decimal("0.10")),
                                 MarginSnapshot("demo-2", Decimal("9000"), Decimal(0),
                                                Decimal(0))), at(10)),
        ]
        log.append(extra, d.engine.state)
    return url


def export(url: str, out: Path, *args: str) -> dict[str, object]:
    assert main(["export", "--out", str(out), "--database-url", url, *args]) == 0
    return {name: json.loads((out / f"{name}.json").read_text()) for name in JSON_ARTIFACTS}


def test_every_artifact_validates_against_its_schema(database: str, tmp_path: Path) -> None:
    docs = export(database, tmp_path)
    for name, doc in docs.items():
        schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.validate(doc, schema, format_checker=jsonschema.FormatChecker())
    recon = docs["reconciliation_history"]["records"]
    assert recon and all(r["ok"] and r["drift"] == "0.00000000" for r in recon)
    assert {(r["client"], r["venue"]) for r in recon} >= {("demo", BINANCE), ("demo-2", BINANCE)}
    [sized] = docs["sized_down_events"]["events_sized_down"]
    assert sized["requested_qty"] == "1.5" and sized["max_impact_bps"] == "50"
    [window] = docs["margin_snapshots"]["transitions"]
    assert window["current"] == "overnight" and len(window["accounts"]) == 2
    kinds = {e["event"] for e in docs["execution_logs"]["entries"]}
    assert {"OrderSubmitted", "OrderFilled", "OrderCanceled", "OrderRejected"} <= kinds
    rejections = docs["rejection_breakdown"]
    assert rejections["rejected"] >= 1 and rejections["submitted"] > rejections["rejected"]
    assert sum(c["count"] for c in rejections["by_code"]) == rejections["rejected"]
    # Trades and equity, CSV and Parquet alike.
    with (tmp_path / "trades.csv").open() as f:
        trades = list(csv.DictReader(f))
    assert trades and pq.read_table(tmp_path / "trades.parquet").num_rows == len(trades)
    trade_schema = json.loads((SCHEMAS / "trades.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(trade_schema)
    assert list(trade_schema["properties"]) == TRADE_COLUMNS == list(trades[0])
    for row in trades:
        jsonschema.validate(row, trade_schema, format_checker=jsonschema.FormatChecker())
    # The session's orders went in against a quoted book: their arrival mids are in
    # the execution log, and the trades' slippage against them in trades.csv.
    submitted = [e for e in docs["execution_logs"]["entries"] if e["event"] == "OrderSubmitted"]
    assert any(e["details"]["arrival_mid"] is not None for e in submitted)
    assert any(row["slippage_bps"] for row in trades)
    with (tmp_path / "equity.csv").open() as f:
        equity = list(csv.DictReader(f))
    assert len(equity) == len(recon)
    assert pq.read_table(tmp_path / "equity.parquet").num_rows == len(equity)
    assert [Decimal(e["equity"]) for e in equity] == [Decimal(r["wallet"]) for r in recon]


def test_filters_by_client_and_time(database: str, tmp_path: Path) -> None:
    docs = export(database, tmp_path, "--client", "demo-2", "--from", at(3).isoformat(),
                  "--to", at(9).isoformat())
    entries = docs["execution_logs"]["entries"]
    assert entries and {e["client"] for e in entries} == {"demo-2"}
    assert all(at(3).isoformat() <= e["at"] < at(9).isoformat() for e in entries)
    assert docs["sized_down_events"]["events_sized_down"] == []  # demo's
    assert docs["margin_snapshots"]["transitions"] == []  # after --to
    assert {r["client"] for r in docs["reconciliation_history"]["records"]} == {"demo-2"}
    assert docs["execution_logs"]["filter"]["client"] == "demo-2"
