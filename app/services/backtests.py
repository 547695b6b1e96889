"""Backtests started from the API and the dashboard: queued, run in worker processes,
their progress pushed live, their reports kept on disk.

* **Who**: starting a run is an operator action, audited (``backtest-start``, scope
  ``backtests``). Reading runs, their metrics and reports is open to every
  authenticated user from viewer up, client scope or not: a backtest trades the
  demo's paper account over a shared bar file, never a client's account, so it holds
  nothing of any client (it is desk research, like the market data it reads).
* **Inputs**: a dataset is a file *name* in the configured data directory
  (``Settings.backtest_data_dir``), looked up among the files there; no path from a
  caller is ever opened. Strategy, venue, symbol and parameters are checked (the
  parameters by the strategy kind's own validator) before anything is queued, so a
  refusal is a 4xx in the one error shape and nothing is left behind.
* **Idempotent**: a request may name its run (``run_id``); a retry with the same id
  and the same definition answers the first run (``created`` False), the same id with
  another definition is 409 ``BACKTEST_ID_REUSED``.
* **Bounded**: ``backtest_workers`` worker processes (``spawn``: they share nothing with
  the server), at most ``backtest_queue_size`` runs queued or running; one more is
  429 ``BACKTEST_QUEUE_FULL``.
* **Never on the event loop**: the run is a worker's; the server only receives its
  progress (a multiprocessing queue, read by a thread that hands each message to the
  loop) and publishes it on the ``backtests`` topic (scripts' ``/ws``, the dashboard).
* **Durable**: each run has a directory under ``Settings.backtest_reports_dir``:
  ``status.json`` (definition, status, key metrics, error) beside the report the
  worker writes (``app/backtest/report.py``). At start the runs are read back; one
  that was queued or running when the server stopped is recorded as failed. A run
  that fails records its error; the server goes on. Shutdown cancels queued runs and
  ends running workers (each recorded as failed: interrupted).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import multiprocessing
import re
import secrets
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.auth.audit import write_rows
from app.auth.principal import Principal, Role
from app.backtest.jobs import (
    BACKTEST_KINDS,
    DATASET_SUFFIXES,
    VENUES,
    InvalidParams,
    JobSpec,
    JobSummary,
    check_bar_file,
    check_signal_file,
    init_worker,
    run_job,
    symbols_on,
    validated_params_of,
)
from app.config import Settings
from app.marketdata.replay import default_data_dir
from app.runtime.broadcast import Broadcaster
from app.services.backtest_runs import (
    DATASET_PATTERN,
    RUN_ID_PATTERN,
    STATUS_FILE,
    BacktestRequest,
    BacktestRun,
    Dataset,
    RunStatus,
    parse_params_text,
    progress_json,
    write_status,
)
from app.services.errors import ServiceError
from app.services.scope import ensure_role
from app.store.tables import AuditRow
from app.strategies.base import params_dict

log = logging.getLogger(__name__)

__all__ = ["BACKTEST_KINDS", "DATASET_PATTERN", "REPORT_FILES", "RUN_ID_PATTERN", "VENUES",
           "BacktestRequest", "BacktestRun", "BacktestService", "Dataset", "RunStatus",
           "parse_params_text", "progress_json", "symbols_on"]

_RUN_ID = re.compile(RUN_ID_PATTERN)
_DATASET = re.compile(DATASET_PATTERN)
# What a run's report directory serves, by name (nothing else in it is reachable).
REPORT_FILES = {
    "report.html": "text/html; charset=utf-8",
    "trades.csv": "text/csv; charset=utf-8",
    "equity.csv": "text/csv; charset=utf-8",
    "trades.parquet": "application/vnd.apache.parquet",
    "equity.parquet": "application/vnd.apache.parquet",
}
MAX_DATASETS = 500  # files listed from the data directory, by name
PAGE_MAX = 100
ERROR_MAX = 500  # characters of a failed run's error kept
TOPIC = "backtests"
AUDIT_SCOPE = "backtests"


class BacktestService:
    """The server's backtest runs (one per server: ``system.backtests``)."""

    def __init__(self, settings: Settings, broadcaster: Broadcaster, db: Any):
        self.data_dir = (settings.backtest_data_dir or default_data_dir()).expanduser()
        self.reports_dir = (settings.backtest_reports_dir
                            or _default_reports_dir(settings.database_url)).expanduser()
        self.workers = settings.backtest_workers
        self.capacity = settings.backtest_queue_size
        self.broadcaster = broadcaster
        self.db = db
        self._runs: dict[str, BacktestRun] = {}  # in creation order (oldest first)
        self._order: list[str] = []
        self._position: dict[str, int] = {}  # run id -> its index in _order
        self._active = 0  # queued or running
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._queue: Any = None
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._pool_lock = threading.Lock()

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Read the runs kept on disk (the worker pool starts with the first run)."""
        self._loop = asyncio.get_running_loop()
        for run in await asyncio.to_thread(self._load):
            self._add(run)

    async def stop(self) -> None:
        """Cancel queued runs, end running workers, stop the progress reader."""
        self._stopping = True
        with self._pool_lock:
            pool = self._pool
        if pool is not None:
            # A run may take minutes: its worker is ended and the run recorded as failed
            # (idle workers are ended too: a run that had just started is no different).
            processes = list((getattr(pool, "_processes", None) or {}).values())
            for process in processes:
                with contextlib.suppress(Exception):
                    process.terminate()
            # Queued runs are cancelled; the pool's thread records every outcome (each
            # run's status.json) before this returns.
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
            for process in processes:  # reaped: no zombie left behind
                await asyncio.to_thread(process.join, 5)
            await asyncio.sleep(0)  # the outcomes' updates, queued to the loop, run now
        if self._queue is not None:
            self._queue.put(None)  # the reader's sentinel
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 5)
        if self._queue is not None:
            self._queue.close()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._queue.join_thread)

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._stopping:
            raise RuntimeError("the server is shutting down")
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            if self._queue is None:
                self._queue = context.Queue()
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context,
                                             initializer=init_worker,
                                             initargs=(self._queue,))
            if self._reader is None:
                self._reader = threading.Thread(target=self._read_progress, daemon=True,
                                                name="backtest-progress")
                self._reader.start()
        return self._pool

    # ---- reads ----------------------------------------------------------------------

    def runs(self, limit: int = 50, before: str | None = None) -> list[BacktestRun]:
        """Runs newest first, ``limit`` of them (at most ``PAGE_MAX``), older than
        ``before`` (a run id) when given; O(page)."""
        limit = max(1, min(limit, PAGE_MAX))
        end = len(self._order)
        if before is not None:
            end = self._position.get(before, -1)
            if end < 0:
                raise ServiceError(404, "UNKNOWN_BACKTEST", f"there is no backtest {before!r}")
        return [self._runs[i] for i in reversed(self._order[max(0, end - limit):end])]

    def page(self, limit: int = 50, before: str | None = None
             ) -> tuple[list[BacktestRun], str | None]:
        """``runs``, and the id to pass as ``before`` for older ones (None: no more)."""
        found = self.runs(limit, before)
        more = bool(found) and self._position[found[-1].run_id] > 0
        return found, found[-1].run_id if more else None

    def run(self, run_id: str) -> BacktestRun:
        found = self._runs.get(run_id)
        if found is None:
            raise ServiceError(404, "UNKNOWN_BACKTEST", f"there is no backtest {run_id!r}")
        return found

    @property
    def active(self) -> int:
        return self._active

    async def performance(self, run_id: str) -> dict[str, Any] | None:
        """A finished run's full metrics (its metrics.json, without server paths)."""
        run = self.run(run_id)
        if run.status is not RunStatus.DONE:
            return None
        path = self.reports_dir / run.run_id / "metrics.json"
        try:
            doc = json.loads(await asyncio.to_thread(path.read_text))
        except (OSError, ValueError):
            return None
        for server_path in ("data", "funding"):
            doc.pop(server_path, None)
        if isinstance(doc.get("signals"), dict):
            doc["signals"].pop("file", None)
        return dict(doc)

    def report_file(self, run_id: str, name: str) -> tuple[Path, str]:
        """A finished run's report file by name (one of ``REPORT_FILES``) and its type."""
        run = self.run(run_id)
        media = REPORT_FILES.get(name)
        if media is None:
            raise ServiceError(404, "UNKNOWN_REPORT_FILE",
                               f"a report has no file {name!r} (one of: "
                               f"{', '.join(REPORT_FILES)})")
        if run.status is not RunStatus.DONE:
            raise ServiceError(409, "BACKTEST_NOT_DONE",
                               f"backtest {run_id!r} is {run.status.value}: its report exists "
                               "once it is done")
        return self.reports_dir / run.run_id / name, media

    async def datasets(self) -> list[Dataset]:
        return await asyncio.to_thread(self._list_datasets)

    def _list_datasets(self) -> list[Dataset]:
        try:
            names = sorted(p.name for p in self.data_dir.iterdir())
        except OSError:
            return []
        found = []
        for name in names:
            path = self._dataset(name)
            if path is None:
                continue
            stat = path.stat()
            bars = _reads_as(check_bar_file, path)  # else quotes, trades...: listed, marked
            signals = not bars and _reads_as(check_signal_file, path)
            found.append(Dataset(name, stat.st_size,
                                 datetime.fromtimestamp(stat.st_mtime, UTC), bars, signals))
            if len(found) >= MAX_DATASETS:
                break
        return found

    def _dataset(self, name: str) -> Path | None:
        """The file ``name`` names in the data directory, if it is a dataset there: a
        plain name (no directory part), a data suffix, a regular file that resolves
        inside the directory (a symlink out of it is not followed)."""
        if not _DATASET.fullmatch(name) or not name.lower().endswith(DATASET_SUFFIXES):
            return None
        path = self.data_dir / name
        try:
            root = self.data_dir.resolve()
            if not path.is_file() or not path.resolve().is_relative_to(root):
                return None
        except OSError:
            return None
        return path

    # ---- starting a run -------------------------------------------------------------

    async def submit(self, principal: Principal, req: BacktestRequest
                     ) -> tuple[BacktestRun, bool]:
        """Queue a run; (the run, True), or (the first run, False) for a retry."""
        ensure_role(principal, Role.OPERATOR)
        if req.run_id is not None:
            if not _RUN_ID.fullmatch(req.run_id):
                raise _invalid("run_id", "letters, digits and . _ -, at most 64")
            existing = self._retried(req)
            if existing is not None:
                return existing, False
        params = self._check(req)
        data, funding, signals = await asyncio.to_thread(self._files, req)
        if self._stopping:
            raise ServiceError(503, "SHUTTING_DOWN", "the server is shutting down",
                               headers={"Retry-After": "5"})
        if req.run_id is not None:  # the same id may have been queued meanwhile
            existing = self._retried(req)
            if existing is not None:
                return existing, False
        if self._active >= self.capacity:
            raise ServiceError(429, "BACKTEST_QUEUE_FULL",
                               f"{self._active} backtests are queued or running (at most "
                               f"{self.capacity}); try again when one has finished",
                               {"limit": self.capacity}, headers={"Retry-After": "10"})
        run_id = req.run_id or _new_run_id()
        run = BacktestRun(run_id, dataclasses.replace(req, run_id=run_id), params,
                          principal.actor, datetime.now(UTC))
        # Taken before the first await: a concurrent request sees the id and the slot.
        self._add(run)
        self._active += 1
        out = self.reports_dir / run_id
        try:
            await asyncio.to_thread(self._persist_new, run, out, _audit_row(principal, run))
        except Exception as exc:
            self._forget(run_id)
            log.warning("backtest %s: could not be recorded: %s", run_id, exc)
            raise ServiceError(503, "STORAGE_UNAVAILABLE",
                               "the backtest could not be recorded; nothing was started",
                               headers={"Retry-After": "1"}) from None
        spec = JobSpec(run_id, req.strategy, data, req.symbol, req.venue, dict(req.params),
                       funding, req.maker_bps, req.taker_bps, out, signals)
        self._publish(run)
        try:  # off the loop: the pool's first submit starts its worker processes
            await asyncio.to_thread(self._launch, spec)
        except Exception as exc:  # no pool to run it (shutting down, cannot spawn)
            log.warning("backtest %s: could not be started: %s", run_id, exc)
            failed = dataclasses.replace(run, status=RunStatus.FAILED,
                                         finished_at=datetime.now(UTC),
                                         error=f"could not be started: {exc}"[:ERROR_MAX])
            with contextlib.suppress(OSError):
                await asyncio.to_thread(write_status, out, failed)
            self._finished(failed)
            return failed, True
        return run, True

    def _launch(self, spec: JobSpec) -> None:
        """Hand the run to the pool; a pool broken by a worker that died (killed, out
        of memory) is replaced, once."""
        with self._pool_lock:  # launches run in threads: one pool, replaced once
            try:
                future = self._ensure_pool().submit(run_job, spec)
            except BrokenProcessPool:
                log.warning("backtest worker pool broken (a worker died); starting a new one")
                broken, self._pool = self._pool, None
                if broken is not None:
                    broken.shutdown(wait=False, cancel_futures=True)
                future = self._ensure_pool().submit(run_job, spec)
        future.add_done_callback(lambda f: self._on_done(spec.run_id, f))

    def _retried(self, req: BacktestRequest) -> BacktestRun | None:
        assert req.run_id is not None
        existing = self._runs.get(req.run_id)
        if existing is None:
            return None
        if existing.request.definition() != req.definition():
            raise ServiceError(409, "BACKTEST_ID_REUSED",
                               f"backtest {req.run_id!r} exists with another definition; "
                               "choose another run_id", {"field": "run_id"})
        return existing

    def _check(self, req: BacktestRequest) -> dict[str, Any]:
        """Strategy, venue, symbol and parameters, before anything is queued."""
        if req.strategy is None and req.signals_dataset is None:
            raise _invalid("strategy", f"one of {', '.join(BACKTEST_KINDS)} (it may be "
                                       "left out only with a signals_dataset)")
        if req.strategy is not None and req.strategy not in BACKTEST_KINDS:
            raise _invalid("strategy", f"one of {', '.join(BACKTEST_KINDS)}")
        if req.venue not in VENUES:
            raise _invalid("venue", f"one of {', '.join(VENUES)}")
        symbols = symbols_on(req.venue)
        if req.symbol not in symbols:
            raise _invalid("symbol", f"one of {', '.join(symbols)}")
        if req.strategy is None:
            if req.params:
                raise ServiceError(422, "INVALID_PARAMS",
                                   "params: parameters are a strategy's; none is given",
                                   {"field": "params"})
            return {}
        try:
            validated = validated_params_of(req.strategy, req.symbol, dict(req.params))
        except InvalidParams as exc:
            first = exc.problems[0]["field"] if exc.problems else ""
            raise ServiceError(422, "INVALID_PARAMS", f"params.{exc}",
                               {"field": f"params.{first}" if first else "params",
                                "errors": exc.problems}) from None
        except (ValueError, TypeError) as exc:
            raise ServiceError(422, "INVALID_PARAMS", f"params: {exc}",
                               {"field": "params"}) from None
        return params_dict(validated)

    def _files(self, req: BacktestRequest) -> tuple[Path, Path | None, Path | None]:
        """The dataset (a bar file), the funding and the signals datasets the request
        names (blocking)."""
        data = self._checked_dataset("dataset", req.dataset, check_bar_file,
                                     "NOT_A_BAR_FILE", "a bar file")
        funding = None
        if req.funding_dataset is not None:
            funding = self._dataset(req.funding_dataset)
            if funding is None:
                raise _unknown_dataset("funding_dataset", req.funding_dataset)
        signals = None
        if req.signals_dataset is not None:
            signals = self._checked_dataset("signals_dataset", req.signals_dataset,
                                            check_signal_file, "NOT_A_SIGNAL_FILE",
                                            "a signal file")
        return data, funding, signals

    def _checked_dataset(self, field: str, name: str, check: Callable[[Path], None],
                         code: str, what: str) -> Path:
        """The dataset ``name`` (404 unless it is one), read as ``what`` by ``check``
        (422 ``code`` with the reason, and no server path, unless it reads)."""
        path = self._dataset(name)
        if path is None:
            raise _unknown_dataset(field, name)
        try:
            check(path)
        except Exception as exc:
            raise ServiceError(422, code, f"dataset {name!r} is not {what}: "
                               f"{str(exc).replace(str(path), name)[:200]}",
                               {"field": field}) from None
        return path

    def _persist_new(self, run: BacktestRun, out: Path, audit: AuditRow) -> None:
        out.mkdir(parents=True, exist_ok=True)
        try:
            write_status(out, run)
            write_rows(self.db, [audit])
        except Exception:
            shutil.rmtree(out, ignore_errors=True)
            raise

    def _add(self, run: BacktestRun) -> None:
        self._runs[run.run_id] = run
        self._position[run.run_id] = len(self._order)
        self._order.append(run.run_id)

    def _forget(self, run_id: str) -> None:
        """Undo ``_add`` of a run that could not be recorded (rare: storage failed)."""
        self._runs.pop(run_id, None)
        with contextlib.suppress(ValueError):
            self._order.remove(run_id)
        self._position = {r: i for i, r in enumerate(self._order)}
        self._active -= 1

    # ---- progress and results (from the workers) ------------------------------------

    def _read_progress(self) -> None:
        """The reader thread: each worker message to the loop, until the sentinel."""
        while True:
            try:
                message = self._queue.get()
            except (EOFError, OSError):
                return
            if message is None:
                return
            self._call_on_loop(self._on_message, message)

    def _call_on_loop(self, callback: Any, *args: Any) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to tell
                self._loop.call_soon_threadsafe(callback, *args)

    def _on_message(self, message: tuple[Any, ...]) -> None:
        run = self._runs.get(str(message[1]))
        if run is None or run.status.finished:
            return
        if message[0] == "started":
            run.status, run.worker_pid = RunStatus.RUNNING, int(message[2])
            run.bars_total = message[3]
            run.started_at = datetime.now(UTC)
        elif message[0] == "progress":
            run.bars_done = int(message[2])
        self._publish(run)

    def _on_done(self, run_id: str, future: Future) -> None:
        """A worker finished (or the run was cancelled): record the outcome on disk
        (in the pool's thread, off the loop), then in memory on the loop."""
        run = self._runs.get(run_id)
        if run is None:
            return
        final = dataclasses.replace(run, finished_at=datetime.now(UTC))
        try:
            summary: JobSummary = future.result()
        except CancelledError:
            final.status, final.error = RunStatus.FAILED, "cancelled: the server shut down"
        except BaseException as exc:  # the run's own failure, or a worker that died
            final.status = RunStatus.FAILED
            if self._stopping:
                final.error = "interrupted: the server shut down"
            elif isinstance(exc, BrokenProcessPool):
                final.error = "the worker process running it died (killed, or out of memory)"
            else:
                final.error = _error_text(exc, self.data_dir)
        else:
            final.status, final.worker_pid = RunStatus.DONE, summary.pid
            final.bars_done = summary.bars
            final.bars_total = final.bars_total or summary.bars
            final.trades, final.metrics = summary.trades, summary.metrics
        try:
            write_status(self.reports_dir / run_id, final)
        except OSError as exc:
            log.warning("backtest %s: could not record its outcome: %s", run_id, exc)
        if final.status is RunStatus.FAILED:
            log.warning("backtest %s failed: %s", run_id, final.error)
        self._call_on_loop(self._finished, final)

    def _finished(self, final: BacktestRun) -> None:
        if self._runs.get(final.run_id) is None:
            return
        self._runs[final.run_id] = final
        self._active -= 1
        self._publish(final)

    def _publish(self, run: BacktestRun) -> None:
        self.broadcaster.publish([{
            "seq": 0, "derived": True, "topic": TOPIC, "type": "BacktestUpdated",
            "client": None, "data": progress_json(run)}])

    # ---- the runs on disk -----------------------------------------------------------

    def _load(self) -> list[BacktestRun]:
        """The runs kept in the reports directory, oldest first; one that had not
        finished when the server stopped is recorded as failed."""
        try:
            entries = list(self.reports_dir.iterdir())
        except OSError:
            return []
        runs = []
        for entry in entries:
            if not _RUN_ID.fullmatch(entry.name):
                continue
            try:
                run = BacktestRun.from_record(json.loads((entry / STATUS_FILE).read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("backtest directory %s: unreadable status (%s); skipped",
                            entry.name, exc)
                continue
            if not run.status.finished:
                run.status, run.error = RunStatus.FAILED, \
                    "interrupted: the server stopped before it finished"
                run.finished_at = run.finished_at or datetime.now(UTC)
                with contextlib.suppress(OSError):
                    write_status(entry, run)
            runs.append(run)
        runs.sort(key=lambda r: (r.created_at, r.run_id))
        return runs


# ---- helpers --------------------------------------------------------------------------------

def _default_reports_dir(database_url: str) -> Path:
    """``backtests`` beside a SQLite database file, else in the working directory."""
    prefix = "sqlite:///"
    if database_url.startswith(prefix):
        db_file = database_url[len(prefix):].split("?", 1)[0]
        if db_file and db_file != ":memory:":
            return Path(db_file).expanduser().resolve().parent / "backtests"
    return Path.cwd() / "backtests"


def _audit_row(principal: Principal, run: BacktestRun) -> AuditRow:
    req = run.request
    return AuditRow(at=run.created_at, actor=principal.actor[:64], action="backtest-start",
                    scope=AUDIT_SCOPE,
                    reason=f"backtest {run.run_id}: {req.strategy} on {req.dataset}"[:500],
                    details={"run_id": run.run_id, **req.definition()})


def _reads_as(check: Callable[[Path], None], path: Path) -> bool:
    """Whether ``check`` reads the file (its header and first row) without a complaint."""
    try:
        check(path)
    except Exception:
        return False
    return True


def _new_run_id() -> str:
    return f"bt-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _invalid(name: str, rule: str) -> ServiceError:
    return ServiceError(422, "INVALID_BACKTEST", f"{name}: {rule}", {"field": name})


def _unknown_dataset(name: str, value: str) -> ServiceError:
    return ServiceError(404, "UNKNOWN_DATASET",
                        f"{name}: there is no dataset {value!r} (GET /api/v1/backtests/datasets "
                        "lists them)", {"field": name})


def _error_text(exc: BaseException, data_dir: Path) -> str:
    """A failed run's error for its record: the exception, without server paths."""
    text = f"{type(exc).__name__}: {exc}".replace(f"{data_dir}/", "")
    return text[:ERROR_MAX]
