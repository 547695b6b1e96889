"""A server backtest's records: what was asked (``BacktestRequest``), what the server
knows of the run (``BacktestRun``, kept as its ``status.json``), the datasets it can
read, and their JSON. Plain values, no I/O but ``write_status``."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from app.backtest.cli import parse_params
from app.backtest.jobs import VENUES

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
DATASET_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
STATUS_FILE = "status.json"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.DONE, RunStatus.FAILED)


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    """What a caller asks for (bounded by the api's schema; checked again here)."""

    strategy: str | None  # None: recorded signals only (``signals_dataset``)
    dataset: str
    symbol: str = "BTC-PERP"
    venue: str = VENUES[0]
    params: Mapping[str, Any] = field(default_factory=dict)
    funding_dataset: str | None = None
    maker_bps: Decimal | None = None
    taker_bps: Decimal | None = None
    run_id: str | None = None
    signals_dataset: str | None = None  # recorded signals submitted at their times

    def definition(self) -> dict[str, Any]:
        """The request as plain JSON (what a retry must repeat, what status.json keeps)."""
        return {"strategy": self.strategy, "dataset": self.dataset, "symbol": self.symbol,
                "venue": self.venue, "params": dict(self.params),
                "funding_dataset": self.funding_dataset,
                "maker_bps": _text(self.maker_bps), "taker_bps": _text(self.taker_bps),
                **({"signals_dataset": self.signals_dataset}
                   if self.signals_dataset is not None else {})}

    @classmethod
    def from_definition(cls, d: dict[str, Any], run_id: str) -> BacktestRequest:
        return cls(d["strategy"], d["dataset"], d["symbol"], d["venue"], dict(d["params"]),
                   d.get("funding_dataset"), _decimal(d.get("maker_bps")),
                   _decimal(d.get("taker_bps")), run_id, d.get("signals_dataset"))


@dataclass(slots=True)
class BacktestRun:
    """One run as the server knows it (what status.json holds)."""

    run_id: str
    request: BacktestRequest
    params: dict[str, Any]  # as the strategy kind validated them, defaults included
    requested_by: str
    created_at: datetime
    status: RunStatus = RunStatus.QUEUED
    bars_done: int = 0
    bars_total: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str = ""
    worker_pid: int | None = None
    trades: int | None = None
    metrics: dict[str, str | None] = field(default_factory=dict)

    @property
    def progress_pct(self) -> Decimal | None:
        if self.status is RunStatus.DONE:
            return Decimal(100)
        if not self.bars_total:
            return None
        return min(Decimal(100), Decimal(self.bars_done * 100) / self.bars_total
                   ).quantize(Decimal("0.1"))

    def record(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "request": self.request.definition(),
                "params": self.params, "requested_by": self.requested_by,
                "created_at": self.created_at.isoformat(), "status": self.status.value,
                "bars_done": self.bars_done, "bars_total": self.bars_total,
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
                "error": self.error, "worker_pid": self.worker_pid, "trades": self.trades,
                "metrics": self.metrics}

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> BacktestRun:
        run_id = str(d["run_id"])
        return cls(run_id, BacktestRequest.from_definition(d["request"], run_id),
                   dict(d["params"]), str(d["requested_by"]),
                   datetime.fromisoformat(d["created_at"]), RunStatus(d["status"]),
                   int(d.get("bars_done") or 0), d.get("bars_total"),
                   _time(d.get("started_at")), _time(d.get("finished_at")),
                   str(d.get("error") or ""), d.get("worker_pid"), d.get("trades"),
                   dict(d.get("metrics") or {}))


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    size_bytes: int
    modified_at: datetime
    bars: bool  # its header reads as a bar file (what a backtest needs)
    signals: bool = False  # it reads as a file of recorded signals (``signals_dataset``)


PARAMS_TEXT_MAX = 4000


def parse_params_text(text: str) -> dict[str, Any]:
    """The dashboard's parameters box: a JSON object, or ``k=v`` pairs (one per line or
    separated by spaces; values as ``perpdesk backtest --params`` reads them).
    ``ValueError`` says what is wrong."""
    text = text.strip()
    if len(text) > PARAMS_TEXT_MAX:
        raise ValueError(f"at most {PARAMS_TEXT_MAX} characters")
    if not text:
        return {}
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not a JSON object: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError("not a JSON object")
        return loaded
    try:
        pairs = [line.strip() for line in text.splitlines()] if "\n" in text \
            else text.split()
        return parse_params([p for p in pairs if p])
    except ValueError as exc:
        raise ValueError(str(exc).replace("--params", "parameters")) from None


def progress_json(run: BacktestRun) -> dict[str, Any]:
    """A run's state in a push (and the list's rows): JSON, decimals as strings."""
    pct = run.progress_pct
    return {"id": run.run_id, "status": run.status.value, "strategy": run.request.strategy,
            "dataset": run.request.dataset, "symbol": run.request.symbol,
            "venue": run.request.venue, "bars_done": run.bars_done,
            "bars_total": run.bars_total, "progress_pct": None if pct is None else str(pct),
            "error": run.error, "trades": run.trades, "metrics": dict(run.metrics)}


def write_status(out: Path, run: BacktestRun) -> None:
    """status.json, replaced atomically (a crash never leaves half a file)."""
    tmp = out / f".{STATUS_FILE}.{os.getpid()}.{threading.get_ident()}"
    tmp.write_text(json.dumps(run.record(), indent=2) + "\n")
    os.replace(tmp, out / STATUS_FILE)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(value: str | None) -> datetime | None:
    return None if not value else datetime.fromisoformat(value)
