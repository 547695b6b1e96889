"""/api/v1/backtests: runs started over the API, in worker processes, with progress
pushed on /ws, results kept on disk across a restart.

The bar files are slices of the real BTC-PERP month (/work/shared/data), written into
a data directory of the test's own; the server is pointed at it
(``backtest_data_dir``), so a run of 2,000 bars takes a second or two.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import zipfile
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.store.tables import AuditRow

SOURCE = Path("/work/shared/data/btc-perp-2022-01_1m.csv")
SMALL = "btc-2000.csv"  # the first 2,000 bars
LONGER = "btc-12000.csv"  # long enough to be watched while it runs
SIGNALS = "model-signals.csv"  # three recorded signals inside SMALL's hours
RUN_TIMEOUT_S = 180.0  # a bound on a hung run, not a timing assertion


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SOURCE.exists():
        pytest.skip(f"{SOURCE} is not here")
    folder = tmp_path_factory.mktemp("backtest-data")
    with SOURCE.open() as f:
        lines = list(islice(f, 12_001))
    (folder / SMALL).write_text("".join(lines[:2_001]))
    (folder / LONGER).write_text("".join(lines))
    (folder / "quotes.csv").write_text("ts,bid,ask\n2022-01-01T00:00:00Z,1,2\n")
    # A bar file by its header whose rows cannot be read: the run itself fails.
    (folder / "broken-bars.csv").write_text(
        lines[0] + "not-a-time,1,2,3,4,5\n" * 10)
    # A real file with a NaN close in its third data row (line 4).
    (folder / "nan-bars.csv").write_text(
        "".join(lines[:3]) + lines[3].rsplit(",", 2)[0] + ",NaN," + lines[3].rsplit(",", 1)[1]
        + "".join(lines[4:2_001]))
    with zipfile.ZipFile(folder / "btc-2000.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("btc-2000.csv", "".join(lines[:2_001]))
    (folder / SIGNALS).write_text("timestamp,signal,strength\n2022-01-01 00:00:00,1,0.2\n"
                                  "2022-01-01 02:00:00,-1,0.2\n2022-01-01 04:00:00,0,\n")
    (folder / "notes.txt").write_text("not a dataset: wrong suffix\n")
    return folder


@pytest.fixture
def bt_api(make_api: Callable[..., Any], data_dir: Path) -> Any:
    return make_api(backtest_data_dir=data_dir)


def start(api: Any, who: str = "operator", **body: Any) -> Any:
    return api.post("/api/v1/backtests", who, json={"strategy": "ma_crossover",
                                                    "dataset": SMALL, **body})


def wait_finished(api: Any, run_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        run = api.ok(api.get(f"/api/v1/backtests/{run_id}", "viewer"))
        if run["status"] in ("done", "failed"):
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"backtest {run_id} not finished after {RUN_TIMEOUT_S} s: {run}")
        time.sleep(0.05)


def assert_error(response: Any, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


# ---- the happy path ---------------------------------------------------------------------------

def test_a_backtest_runs_in_a_worker_and_its_report_is_served(bt_api: Any) -> None:
    datasets = bt_api.ok(bt_api.get("/api/v1/backtests/datasets", "viewer"))
    by_name = {d["name"]: d for d in datasets}
    assert by_name[SMALL]["bars"] is True and by_name["quotes.csv"]["bars"] is False
    assert by_name["btc-2000.zip"]["bars"] is True  # a zipped CSV, read as it is
    assert by_name[SIGNALS]["signals"] is True and by_name[SIGNALS]["bars"] is False
    assert by_name[SMALL]["signals"] is False and by_name["quotes.csv"]["signals"] is False
    assert "notes.txt" not in by_name  # not a data file

    queued = bt_api.ok(start(bt_api, fees={"maker_bps": "2", "taker_bps": "5.5"},
                             params={"fast_period": 5, "slow_period": 20}), 201)
    assert queued["status"] == "queued" and queued["report_url"] is None
    assert queued["params"]["fast_period"] == 5  # validated, defaults filled in
    assert queued["params"]["symbol"] == "BTC-PERP"
    assert queued["fees"] == {"maker_bps": "2", "taker_bps": "5.5"}

    run = wait_finished(bt_api, queued["id"])
    assert run["status"] == "done", run["error"]
    assert run["error"] == ""
    assert run["bars_done"] == run["bars_total"] == 2_000
    assert run["progress_pct"] == "100"
    # The run happened in another process: the worker's pid, not the server's.
    assert isinstance(run["worker_pid"], int) and run["worker_pid"] != os.getpid()
    assert isinstance(run["trades"], int) and run["trades"] > 0
    assert set(run["metrics"]) >= {"total_pnl", "total_return", "sharpe", "max_drawdown_pct",
                                   "win_rate"}
    performance = run["performance"]
    assert performance["trades"]["trades"] == run["trades"]
    assert performance["total_pnl"] == run["metrics"]["total_pnl"]
    assert performance["fees_bps"] == {"maker": "2", "taker": "5.5"}
    assert "data" not in performance  # no server path in an answer

    report = bt_api.get(run["report_url"], "viewer")
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert "<title>Backtest: ma_crossover on BTC-PERP</title>" in report.text
    # Its own inline chart code runs, sandboxed away from the dashboard's origin.
    assert "sandbox allow-scripts" in report.headers["content-security-policy"]

    trades_csv = bt_api.get(f"/api/v1/backtests/{run['id']}/files/trades.csv", "viewer")
    assert trades_csv.status_code == 200 and trades_csv.headers["content-type"].startswith(
        "text/csv")
    assert len(list(csv.DictReader(io.StringIO(trades_csv.text)))) == run["trades"]
    parquet = bt_api.get(f"/api/v1/backtests/{run['id']}/files/equity.parquet", "viewer")
    assert parquet.status_code == 200 and parquet.content[:4] == b"PAR1"
    # Only the allow-listed files: nothing else of the directory is reachable.
    for name in ("status.json", "metrics.json", "..%2Fstatus.json", "run.json"):
        assert bt_api.get(f"/api/v1/backtests/{run['id']}/files/{name}",
                          "viewer").status_code in (404, 422)

    listed = bt_api.ok(bt_api.get("/api/v1/backtests", "viewer"))
    assert [r["id"] for r in listed["items"]] == [run["id"]]
    assert listed["next_before"] is None

    audit = bt_api.rows(AuditRow, AuditRow.action == "backtest-start")
    assert len(audit) == 1 and audit[0].actor == "key:operator"
    assert audit[0].details["run_id"] == run["id"] and audit[0].details["dataset"] == SMALL


def test_the_list_is_newest_first_and_pages_back(bt_api: Any) -> None:
    for n in range(3):
        bt_api.ok(start(bt_api, run_id=f"page-{n}"), 201)
    first = bt_api.ok(bt_api.get("/api/v1/backtests", "viewer", params={"limit": 2}))
    assert [r["id"] for r in first["items"]] == ["page-2", "page-1"]
    assert first["next_before"] == "page-1"
    rest = bt_api.ok(bt_api.get("/api/v1/backtests", "viewer",
                                params={"limit": 2, "before": first["next_before"]}))
    assert [r["id"] for r in rest["items"]] == ["page-0"] and rest["next_before"] is None
    for n in range(3):
        wait_finished(bt_api, f"page-{n}")


def test_a_backtest_of_recorded_signals_alone(bt_api: Any) -> None:
    queued = bt_api.ok(start(bt_api, strategy=None, signals_dataset=SIGNALS), 201)
    assert queued["strategy"] is None and queued["signals_dataset"] == SIGNALS
    assert queued["params"] == {}
    run = wait_finished(bt_api, queued["id"])
    assert run["status"] == "done", run["error"]
    signals = run["performance"]["signals"]
    assert signals == {"submitted": 3, "refused": 0, "last_refusal": None, "outside_data": 0,
                       "other_markets": 0}
    assert run["trades"] >= 1  # the long, closed by its bracket or the short
    report = bt_api.get(run["report_url"], "viewer")
    assert f"<title>Backtest: signals {SIGNALS} on BTC-PERP</title>" in report.text


# ---- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "status", "code", "field"), [
    ({"dataset": "no-such-file.csv"}, 404, "UNKNOWN_DATASET", "dataset"),
    ({"dataset": "../btc-2000.csv"}, 422, "VALIDATION_ERROR", "dataset"),
    ({"dataset": "/etc/passwd"}, 422, "VALIDATION_ERROR", "dataset"),
    ({"dataset": "notes.txt"}, 404, "UNKNOWN_DATASET", "dataset"),
    ({"dataset": "quotes.csv"}, 422, "NOT_A_BAR_FILE", "dataset"),
    ({"funding_dataset": "missing.csv"}, 404, "UNKNOWN_DATASET", "funding_dataset"),
    ({"params": {"fast_period": "ten"}}, 422, "INVALID_PARAMS", "params.fast_period"),
    ({"params": {"no_such_param": 1}}, 422, "INVALID_PARAMS", "params.no_such_param"),
    ({"strategy": "funding_arb"}, 422, "VALIDATION_ERROR", "strategy"),
    ({"symbol": "DOGE-PERP"}, 422, "INVALID_BACKTEST", "symbol"),
    ({"venue": "paper-mars"}, 422, "VALIDATION_ERROR", "venue"),
    ({"fees": {"taker_bps": 5.5}}, 422, "VALIDATION_ERROR", "fees.taker_bps"),
    ({"fees": {"taker_bps": "5000"}}, 422, "VALIDATION_ERROR", "fees.taker_bps"),
    ({"run_id": "../../etc"}, 422, "VALIDATION_ERROR", "run_id"),
    ({"params": {f"p{i}": 1 for i in range(65)}}, 422, "VALIDATION_ERROR", "params"),
    ({"strategy": None}, 422, "INVALID_BACKTEST", "strategy"),
    ({"strategy": None, "signals_dataset": SIGNALS, "params": {"fast_period": 5}}, 422,
     "INVALID_PARAMS", "params"),
    ({"signals_dataset": "quotes.csv"}, 422, "NOT_A_SIGNAL_FILE", "signals_dataset"),
    ({"signals_dataset": "missing.csv"}, 404, "UNKNOWN_DATASET", "signals_dataset"),
])
def test_bad_input_is_refused_before_anything_is_queued(bt_api: Any, body: dict, status: int,
                                                         code: str, field: str) -> None:
    error = assert_error(start(bt_api, **body), status, code)
    assert error["details"]["field"] == field
    assert bt_api.ok(bt_api.get("/api/v1/backtests", "viewer"))["items"] == []
    assert bt_api.rows(AuditRow, AuditRow.action == "backtest-start") == []


@pytest.mark.parametrize("who", ["viewer", "trader"])
def test_starting_a_backtest_needs_an_operator(bt_api: Any, who: str) -> None:
    error = assert_error(start(bt_api, who), 403, "FORBIDDEN")
    assert "operator" in error["message"]
    assert bt_api.ok(bt_api.get("/api/v1/backtests", who))["items"] == []


def test_unauthenticated_callers_get_nothing(bt_api: Any) -> None:
    assert_error(start(bt_api, None), 401, "UNAUTHENTICATED")
    for path in ("/api/v1/backtests", "/api/v1/backtests/datasets", "/api/v1/backtests/x",
                 "/api/v1/backtests/x/report"):
        assert_error(bt_api.get(path, None), 401, "UNAUTHENTICATED")


def test_an_unknown_or_unfinished_run_has_no_report(bt_api: Any) -> None:
    assert_error(bt_api.get("/api/v1/backtests/nope", "viewer"), 404, "UNKNOWN_BACKTEST")
    assert_error(bt_api.get("/api/v1/backtests/nope/report", "viewer"), 404, "UNKNOWN_BACKTEST")
    bt_api.system.backtests._launch = lambda spec: None  # it stays queued
    run = bt_api.ok(start(bt_api), 201)
    assert_error(bt_api.get(f"/api/v1/backtests/{run['id']}/report", "viewer"), 409,
                 "BACKTEST_NOT_DONE")


# ---- idempotency, the bounded queue ------------------------------------------------------------

def test_a_retry_with_the_same_run_id_starts_nothing_new(bt_api: Any) -> None:
    first = bt_api.ok(start(bt_api, run_id="nightly-1"), 201)
    again = bt_api.ok(start(bt_api, run_id="nightly-1"), 200)
    assert again["id"] == first["id"] == "nightly-1"
    assert_error(start(bt_api, run_id="nightly-1", params={"fast_period": 7}), 409,
                 "BACKTEST_ID_REUSED")
    assert [r["id"] for r in bt_api.ok(bt_api.get("/api/v1/backtests"))["items"]] == ["nightly-1"]
    assert len(bt_api.rows(AuditRow, AuditRow.action == "backtest-start")) == 1
    assert wait_finished(bt_api, "nightly-1")["status"] == "done"
    # Also once it has finished.
    assert bt_api.ok(start(bt_api, run_id="nightly-1"), 200)["status"] == "done"


def test_a_full_queue_is_refused_with_a_clear_code(make_api: Callable[..., Any],
                                                   data_dir: Path) -> None:
    api = make_api(backtest_data_dir=data_dir, backtest_queue_size=2)
    api.system.backtests._launch = lambda spec: None  # runs stay queued: the queue fills
    api.ok(start(api, run_id="q-1"), 201)
    api.ok(start(api, run_id="q-2"), 201)
    error = assert_error(start(api, run_id="q-3"), 429, "BACKTEST_QUEUE_FULL")
    assert error["details"]["limit"] == 2
    assert start(api, run_id="q-3").headers["retry-after"]
    # A retry of a queued run is still answered (it takes no new slot).
    assert api.ok(start(api, run_id="q-1"), 200)["id"] == "q-1"
    assert len(api.ok(api.get("/api/v1/backtests"))["items"]) == 2


def test_concurrent_retries_start_one_run_and_concurrent_requests_fill_the_queue_exactly(
        make_api: Callable[..., Any], data_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    api = make_api(backtest_data_dir=data_dir, backtest_queue_size=3)
    api.system.backtests._launch = lambda spec: None  # runs stay queued
    with ThreadPoolExecutor(8) as pool:
        same = list(pool.map(lambda _: start(api, run_id="once"), range(8)))
    assert sorted(r.status_code for r in same) == [200] * 7 + [201]
    assert {r.json()["id"] for r in same} == {"once"}
    assert len(api.rows(AuditRow, AuditRow.action == "backtest-start")) == 1
    with ThreadPoolExecutor(8) as pool:
        many = list(pool.map(lambda n: start(api, run_id=f"many-{n}"), range(8)))
    assert sorted(r.status_code for r in many) == [201] * 2 + [429] * 6
    assert len(api.ok(api.get("/api/v1/backtests"))["items"]) == 3
    assert len(api.rows(AuditRow, AuditRow.action == "backtest-start")) == 3


def test_an_operator_scoped_to_a_client_may_run_one_and_everyone_reads_it(bt_api: Any
                                                                           ) -> None:
    # A backtest trades the demo's paper account over a shared file, no client's account.
    run = bt_api.ok(start(bt_api, "scoped", run_id="scoped-run"), 201)
    assert run["requested_by"] == "key:scoped-demo"
    for who in ("viewer", "trader", "scoped", "admin"):
        listed = bt_api.ok(bt_api.get("/api/v1/backtests", who))["items"]
        assert [r["id"] for r in listed] == ["scoped-run"]
    assert wait_finished(bt_api, "scoped-run")["status"] == "done"


# ---- worker processes, failures, the event loop ------------------------------------------------

def test_the_server_answers_while_a_run_is_in_progress(bt_api: Any) -> None:
    run = bt_api.ok(start(bt_api, dataset=LONGER), 201)
    answered_while_running = 0
    while True:
        before = bt_api.ok(bt_api.get(f"/api/v1/backtests/{run['id']}"))
        assert bt_api.get("/api/v1/orders", "viewer").status_code == 200
        assert bt_api.get("/healthz", None).status_code == 200
        after = bt_api.ok(bt_api.get(f"/api/v1/backtests/{run['id']}"))
        if before["status"] == after["status"] == "running":
            answered_while_running += 1
            assert before["worker_pid"] != os.getpid()
        if after["status"] in ("done", "failed"):
            break
    assert after["status"] == "done", after["error"]
    assert answered_while_running > 0


@pytest.mark.parametrize(("dataset", "says"), [
    ("broken-bars.csv", "line 2: timestamp: not an ISO 8601 time"),
    ("nan-bars.csv", "line 4: close must be a positive price"),
])
def test_a_run_that_fails_records_its_error_and_the_server_goes_on(bt_api: Any, dataset: str,
                                                                   says: str) -> None:
    run = bt_api.ok(start(bt_api, dataset=dataset), 201)
    failed = wait_finished(bt_api, run["id"])
    assert failed["status"] == "failed"
    assert failed["error"] and str(bt_api.system.backtests.data_dir) not in failed["error"]
    assert says in failed["error"], failed["error"]
    assert failed["report_url"] is None and failed["performance"] is None
    assert bt_api.get(f"/api/v1/backtests/{run['id']}/report", "viewer").status_code == 409
    # The next run is fine.
    assert wait_finished(bt_api, bt_api.ok(start(bt_api), 201)["id"])["status"] == "done"


def test_a_worker_killed_mid_run_fails_its_run_and_the_next_run_gets_a_new_worker(
        bt_api: Any) -> None:
    import signal

    run = bt_api.ok(start(bt_api, dataset=LONGER), 201)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while (seen := bt_api.ok(bt_api.get(f"/api/v1/backtests/{run['id']}")))["status"] \
            == "queued":
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    assert seen["status"] == "running", seen
    os.kill(seen["worker_pid"], signal.SIGKILL)  # out of memory, say
    killed = wait_finished(bt_api, run["id"])
    assert killed["status"] == "failed" and "worker process running it died" in killed["error"]
    after = wait_finished(bt_api, bt_api.ok(start(bt_api), 201)["id"])
    assert after["status"] == "done" and after["worker_pid"] != seen["worker_pid"]


def test_progress_is_pushed_on_the_backtests_topic(bt_api: Any, ws_recv: Any) -> None:
    with bt_api.ws("viewer", topics="backtests") as ws:
        assert ws_recv(ws)["type"] == "ready"
        run = bt_api.ok(start(bt_api), 201)
        pushed = []
        while not pushed or pushed[-1]["status"] not in ("done", "failed"):
            message = ws_recv(ws, timeout=RUN_TIMEOUT_S)
            assert message["topic"] == "backtests" and message["type"] == "BacktestUpdated"
            assert message["data"]["id"] == run["id"]
            pushed.append(message["data"])
    statuses = [p["status"] for p in pushed]
    assert statuses[0] == "queued" and statuses[-1] == "done"
    assert "running" in statuses
    done = [p["bars_done"] for p in pushed]
    assert done == sorted(done) and done[-1] == pushed[-1]["bars_total"] == 2_000
    assert pushed[-1]["metrics"]["total_pnl"] is not None


def _server(db: Path, data_dir: Path) -> Any:
    """An app of its own (not the fixtures'): this test stops it and starts it again."""
    from app.config import Settings
    from app.server import create_app

    return TestClient(create_app(Settings(
        database_url=f"sqlite:///{db}", feed="none", demo_credentials=False,
        rate_limit_per_s=0, backtest_data_dir=data_dir)))


def _as_operator(client: Any) -> dict[str, str]:
    from app.auth.principal import Role

    key = client.app.state.auth.create_key(Role.OPERATOR, name=f"op-{time.monotonic_ns()}")
    return {"Authorization": f"Bearer {key}"}


def test_runs_survive_a_restart_and_shutdown_ends_running_workers(tmp_path: Path,
                                                                  data_dir: Path) -> None:
    db = tmp_path / "restart.db"
    with _server(db, data_dir) as client:
        key = _as_operator(client)
        post = {"strategy": "ma_crossover", "dataset": SMALL, "run_id": "kept"}
        assert client.post("/api/v1/backtests", json=post, headers=key).status_code == 201
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while client.get("/api/v1/backtests/kept", headers=key).json()["status"] != "done":
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.05)
        long = {**post, "dataset": LONGER, "run_id": "cut-short"}
        assert client.post("/api/v1/backtests", json=long, headers=key).status_code == 201
        while (running := client.get("/api/v1/backtests/cut-short", headers=key).json()
               )["status"] != "running":
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        worker = running["worker_pid"]
    # Shut down mid-run: the worker is ended (and reaped), the run recorded as failed.
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)
    status = json.loads((tmp_path / "backtests" / "cut-short" / "status.json").read_text())
    assert status["status"] == "failed" and "shut down" in status["error"]

    with _server(db, data_dir) as client:
        key = _as_operator(client)
        listed = client.get("/api/v1/backtests", headers=key).json()["items"]
        assert [(r["id"], r["status"]) for r in listed] == [("cut-short", "failed"),
                                                            ("kept", "done")]
        kept = client.get("/api/v1/backtests/kept", headers=key).json()
        assert kept["performance"]["trades"]["trades"] == kept["trades"]
        report = client.get(kept["report_url"], headers=key)
        assert report.status_code == 200 and "Backtest: ma_crossover" in report.text


def test_a_run_left_unfinished_by_a_crash_is_failed_at_the_next_start(
        tmp_path: Path, data_dir: Path) -> None:
    db = tmp_path / "crash.db"
    run_dir = tmp_path / "backtests" / "crashed"
    with _server(db, data_dir) as client:
        key = _as_operator(client)
        client.app.state.system.backtests._launch = lambda spec: None
        body = {"strategy": "ma_crossover", "dataset": SMALL, "run_id": "crashed"}
        assert client.post("/api/v1/backtests", json=body, headers=key).status_code == 201
        saved = (run_dir / "status.json").read_text()
    (run_dir / "status.json").write_text(saved)  # as a crash would have left it: queued
    assert json.loads(saved)["status"] == "queued"
    with _server(db, data_dir) as client:
        run = client.get("/api/v1/backtests/crashed", headers=_as_operator(client)).json()
        assert run["status"] == "failed" and "stopped before it finished" in run["error"]


# ---- the dashboard's form and live list, server side -------------------------------------------
# (In a real browser: tests/web/test_backtests_page.py.)

def _log_in(api: Any, name: str, role: Any) -> str:
    api.auth.add_user(name, role, "correct horse battery")
    body = api.ok(api.post("/api/v1/auth/login", None,
                           json={"name": name, "password": "correct horse battery"}))
    return str(body["csrf_token"])


def _pushed_html(ws: Any, timeout: float) -> str:
    import anyio

    async def receive() -> Any:
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    message = ws.portal.call(receive)
    ws._raise_on_close(message)
    return str(message["text"])


def test_the_dashboard_form_starts_a_run_and_the_list_follows_it_live(bt_api: Any) -> None:
    from app.auth.principal import Role

    csrf = _log_in(bt_api, "desk-op", Role.OPERATOR)
    page = bt_api.client.get("/backtests")
    assert page.status_code == 200
    assert 'id="backtest-form"' in page.text and f'<option value="{SMALL}"' in page.text
    assert 'value="quotes.csv"' not in page.text.split('name="dataset"')[1].split("</select>")[0]
    form = {"strategy": "ma_crossover", "dataset": SMALL, "symbol": "BTC-PERP",
            "venue": "paper-binance", "params": "fast_period=5\nslow_period=20",
            "maker_bps": "2", "taker_bps": "", "funding_dataset": "", "run_id": "ui-form-1"}
    # Without the session's CSRF token: refused, nothing started.
    refused = bt_api.client.post("/ui/backtests", data=form)
    assert refused.status_code == 403 and bt_api.system.backtests.runs() == []

    with bt_api.client.websocket_connect("/ui/ws?page=backtests") as ws:
        assert 'id="backtests"' in _pushed_html(ws, 10)  # the full render on connect
        answer = bt_api.client.post("/ui/backtests", data=form, headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 200, answer.text
        assert "Backtest ui-form-1 queued" in answer.text
        # A double submit of the same form starts nothing more.
        again = bt_api.client.post("/ui/backtests", data=form, headers={"X-CSRF-Token": csrf})
        assert "was already started" in again.text
        seen = []
        while 'data-status="done"' not in (seen or [""])[-1]:
            html = _pushed_html(ws, RUN_TIMEOUT_S)
            if 'data-backtest="ui-form-1"' in html:
                seen.append(html)
    assert 'href="/api/v1/backtests/ui-form-1/report"' in seen[-1]
    assert "2,000/2,000 bars" in seen[-1]
    run = bt_api.ok(bt_api.get("/api/v1/backtests/ui-form-1"))
    assert run["requested_by"] == "session:desk-op" and run["params"]["slow_period"] == 20
    assert run["fees"] == {"maker_bps": "2", "taker_bps": None}
    # The report opens with the session (a GET: no CSRF token needed).
    assert bt_api.client.get("/api/v1/backtests/ui-form-1/report").status_code == 200


def test_the_form_answers_refusals_next_to_the_field(bt_api: Any) -> None:
    from app.auth.principal import Role

    csrf = _log_in(bt_api, "desk-op2", Role.OPERATOR)
    form = {"strategy": "ma_crossover", "dataset": SMALL, "params": "fast_period=soon"}
    answer = bt_api.client.post("/ui/backtests", data=form, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 422
    assert 'data-field="params"' in answer.text and "INVALID_PARAMS" in answer.text
    assert "fast_period=soon" in answer.text  # kept, to be corrected
    answer = bt_api.client.post("/ui/backtests", data={**form, "params": "{not json"},
                                headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 422 and "not a JSON object" in answer.text
    answer = bt_api.client.post("/ui/backtests", data={**form, "params": "",
                                                       "dataset": "nope.csv"},
                                headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 404 and 'data-field="dataset"' in answer.text
    # No strategy: only with recorded signals, and then it is refused next to the field.
    answer = bt_api.client.post("/ui/backtests", data={**form, "params": "", "strategy": ""},
                                headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 422 and 'data-field="strategy"' in answer.text
    assert 'value="" selected>none (signals only)' in answer.text  # kept as chosen
    assert bt_api.system.backtests.runs() == []
    answer = bt_api.client.post("/ui/backtests", data={**form, "params": "", "strategy": "",
                                                       "signals_dataset": SIGNALS},
                                headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200 and f"queued: signals {SIGNALS} on {SMALL}" in answer.text


def test_a_viewer_session_cannot_start_a_run_from_the_form(bt_api: Any) -> None:
    from app.auth.principal import Role

    csrf = _log_in(bt_api, "desk-viewer", Role.VIEWER)
    page = bt_api.client.get("/backtests")
    assert page.status_code == 200 and 'id="backtest-form"' not in page.text
    answer = bt_api.client.post("/ui/backtests", headers={"X-CSRF-Token": csrf},
                                data={"strategy": "ma_crossover", "dataset": SMALL})
    assert answer.status_code == 403 and bt_api.system.backtests.runs() == []
