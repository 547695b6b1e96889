"""/api/v1/backtests: backtests run by the server, in worker processes.

* ``POST /backtests`` (operator; audited): a strategy kind, a dataset *name* (from
  ``GET /backtests/datasets``), symbol, venue, parameters, optional funding dataset and
  fees. Checked before it is queued (422 ``INVALID_PARAMS`` names the parameter, 404
  ``UNKNOWN_DATASET``, 422 ``NOT_A_BAR_FILE``); 201 with the queued run. Idempotent on
  ``run_id``: a retry answers 200 with the first run, the same id with another
  definition is 409 ``BACKTEST_ID_REUSED``. Too many runs queued or running: 429
  ``BACKTEST_QUEUE_FULL``.
* ``GET /backtests`` (viewer): runs newest first (``limit``, ``before`` to page back),
  each with its status (queued, running, done, failed), progress and key metrics.
* ``GET /backtests/{id}``: one run, with its full metrics once done.
* ``GET /backtests/{id}/report``: its self-contained HTML report;
  ``GET /backtests/{id}/files/{name}``: its trades and equity as CSV or Parquet.

Progress is pushed on the ``backtests`` topic of ``/ws`` as it runs.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, BeforeValidator, Field, StringConstraints, WithJsonSchema

from app.api.deps import Operator, Reads, System
from app.api.errors import ApiError
from app.api.inputs import AMOUNT_PATTERN, SymbolName, parse_decimal
from app.api.openapi import Responses
from app.api.responses import json_response
from app.api.schemas import Strict
from app.api.strategies import ParamsIn
from app.services.backtests import (
    BACKTEST_KINDS,
    DATASET_PATTERN,
    REPORT_FILES,
    RUN_ID_PATTERN,
    VENUES,
    BacktestRequest,
    BacktestRun,
    BacktestService,
    Dataset,
    progress_json,
)

router = APIRouter(prefix="/backtests", tags=["backtests"])

# The report runs its own inline chart code: allowed here alone, in a sandbox (an
# opaque origin: the page cannot read the dashboard's cookies or call the API).
REPORT_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                 "img-src data:; sandbox allow-scripts; frame-ancestors 'none'")
MAX_FEE_BPS = 1000

Strategy = Literal[BACKTEST_KINDS]  # type: ignore[valid-type]
Venue = Literal[VENUES]  # type: ignore[valid-type]
DatasetName = Annotated[str, StringConstraints(min_length=1, max_length=128,
                                               pattern=DATASET_PATTERN)]
RunId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=RUN_ID_PATTERN)]
RunIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=RUN_ID_PATTERN)]
FeeBps = Annotated[
    Decimal, BeforeValidator(parse_decimal), Field(ge=0, le=MAX_FEE_BPS),
    WithJsonSchema({"type": "string", "pattern": AMOUNT_PATTERN, "examples": ["2.5"],
                    "description": f"basis points of notional, 0 to {MAX_FEE_BPS}"})]
ReportFile = Literal["trades.csv", "equity.csv", "trades.parquet", "equity.parquet"]


class FeesIn(Strict):
    maker_bps: FeeBps | None = None
    taker_bps: FeeBps | None = None


class BacktestCreate(Strict):
    strategy: Strategy | None = Field(
        default=None, description="left out only with a signals_dataset: signals alone")
    dataset: DatasetName
    symbol: SymbolName = "BTC-PERP"
    venue: Venue = VENUES[0]
    params: ParamsIn = Field(default_factory=dict)
    funding_dataset: DatasetName | None = None
    signals_dataset: DatasetName | None = Field(
        default=None, description="recorded signals (time, signal 1/0/-1, optional client, "
                                  "strategy, strength, signal_id), each submitted at its "
                                  "time as POST /signals would")
    fees: FeesIn | None = None
    run_id: RunId | None = Field(
        default=None, description="your id for this run: a retry with it starts nothing new")


class FeesPublic(BaseModel):
    maker_bps: str | None
    taker_bps: str | None


class BacktestPublic(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    strategy: str | None
    dataset: str
    funding_dataset: str | None
    signals_dataset: str | None
    symbol: str
    venue: str
    params: dict[str, Any]
    fees: FeesPublic
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    bars_done: int
    bars_total: int | None
    progress_pct: str | None
    error: str
    worker_pid: int | None
    trades: int | None
    metrics: dict[str, str | None]  # total_pnl, total_return, sharpe, max_drawdown_pct...
    report_url: str | None


class BacktestDetail(BacktestPublic):
    performance: dict[str, Any] | None  # every metric (the report's metrics.json)


class BacktestPage(BaseModel):
    items: list[BacktestPublic]
    next_before: str | None  # pass as ``before`` for older runs


class DatasetPublic(BaseModel):
    name: str
    size_bytes: int
    modified_at: datetime
    bars: bool  # reads as a bar file (a ``dataset``)
    signals: bool  # reads as recorded signals (a ``signals_dataset``)


ERRORS: Responses = {404: {"description": "no such backtest, dataset or report file"},
                     409: {"description": "the run id is taken by another definition, or "
                                          "the run has not finished"},
                     422: {"description": "a strategy, venue, symbol or parameter refused"}}


def _service(system: Any) -> BacktestService:
    service = system.backtests
    if service is None:
        raise ApiError(503, "BACKTESTS_UNAVAILABLE", "backtests are not running on this server",
                       headers={"Retry-After": "5"})
    return service


def run_json(run: BacktestRun) -> dict[str, Any]:
    data = progress_json(run)
    req = run.request
    data.update({
        "funding_dataset": req.funding_dataset, "signals_dataset": req.signals_dataset,
        "params": run.params,
        "fees": {"maker_bps": data_text(req.maker_bps), "taker_bps": data_text(req.taker_bps)},
        "requested_by": run.requested_by, "created_at": run.created_at,
        "started_at": run.started_at, "finished_at": run.finished_at,
        "worker_pid": run.worker_pid,
        "report_url": f"/api/v1/backtests/{run.run_id}/report"
        if run.status.value == "done" else None})
    return data


def data_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def request_of(body: BacktestCreate) -> BacktestRequest:
    fees = body.fees or FeesIn()
    return BacktestRequest(strategy=body.strategy, dataset=body.dataset, symbol=body.symbol,
                           venue=body.venue, params=dict(body.params),
                           funding_dataset=body.funding_dataset, maker_bps=fees.maker_bps,
                           taker_bps=fees.taker_bps, run_id=body.run_id,
                           signals_dataset=body.signals_dataset)


@router.post("", status_code=201, response_model=BacktestPublic,
             responses={**ERRORS, 200: {"model": BacktestPublic,
                                        "description": "a retry (same run_id): the first run"}},
             summary="Start a backtest in a worker process (operator)")
async def start_backtest(body: BacktestCreate, principal: Operator, system: System) -> Any:
    run, created = await _service(system).submit(principal, request_of(body))
    return json_response(run_json(run), 201 if created else 200)


@router.get("", response_model=BacktestPage, responses=ERRORS,
            summary="Backtests, newest first")
async def list_backtests(
        reader: Reads,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        before: Annotated[str | None, Query(min_length=1, max_length=64,
                                            pattern=RUN_ID_PATTERN,
                                            description="next_before of the previous page")
                          ] = None) -> Any:
    runs, next_before = _service(reader.system).page(limit, before)
    return json_response({"items": [run_json(r) for r in runs], "next_before": next_before})


@router.get("/datasets", response_model=list[DatasetPublic],
            summary="The datasets a backtest can read (files of the data directory)")
async def list_datasets(reader: Reads) -> Any:
    found: list[Dataset] = await _service(reader.system).datasets()
    return json_response([{"name": d.name, "size_bytes": d.size_bytes,
                           "modified_at": d.modified_at, "bars": d.bars,
                           "signals": d.signals} for d in found])


@router.get("/{run_id}", response_model=BacktestDetail, responses=ERRORS,
            summary="One backtest: its definition, status, progress and metrics")
async def get_backtest(run_id: RunIdPath, reader: Reads) -> Any:
    service = _service(reader.system)
    run = service.run(run_id)
    return json_response({**run_json(run), "performance": await service.performance(run_id)})


@router.get("/{run_id}/report", response_class=FileResponse,
            responses={**ERRORS, 200: {"content": {"text/html": {"schema": {"type": "string"}}},
                                       "description": "the report page"}},
            summary="A finished backtest's report (a self-contained HTML page)")
async def get_report(run_id: RunIdPath, reader: Reads) -> FileResponse:
    return _file(reader.system, run_id, "report.html",
                 headers={"Content-Security-Policy": REPORT_POLICY})


@router.get("/{run_id}/files/{name}", response_class=FileResponse,
            responses={**ERRORS, 200: {"content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string",
                                                              "format": "binary"}}},
                "description": "the file"}},
            summary="A finished backtest's trades or equity, as CSV or Parquet")
async def get_file(run_id: RunIdPath, name: ReportFile, reader: Reads) -> FileResponse:
    return _file(reader.system, run_id, name,
                 headers={"Content-Disposition": f'attachment; filename="{run_id}-{name}"'})


def _file(system: Any, run_id: str, name: str, headers: dict[str, str]) -> FileResponse:
    path, media = _service(system).report_file(run_id, name)
    if not path.is_file():
        raise ApiError(404, "REPORT_MISSING", f"backtest {run_id!r} has no {name} (removed?)")
    return FileResponse(path, media_type=media, headers=headers)


__all__ = ["REPORT_FILES", "router"]
