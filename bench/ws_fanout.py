"""Live dashboard fan-out: latency from "event committed" to "fragment received".

Starts ``perpdesk serve`` on loopback (embedded default config, a fresh SQLite database
in a temporary directory, no demo credentials, no rate limit; an operator user
``bench`` and an operator API key made beforehand with the CLI), waits for /readyz,
logs in through ``POST /login`` for the ``perpdesk_session`` cookie and opens
``--clients`` dashboard WebSockets (``/ui/ws?page=dashboard``, the ``websockets``
package, one asyncio process, permessage-deflate offered as browsers do unless
``--no-compression``). All share one session, i.e. one view: what 100 people watching
the same desk cost.

Load: limit orders 5 % away from the touch for clients demo and demo-2, round-robin
over every (client, venue, symbol, side), sent on an open-loop schedule at
``--events-per-s / 4`` orders per second over ``--conns`` keep-alive HTTP connections
(Bearer key). The paper venues have no latency, so each POST commits OrderSubmitted +
OrderAccepted and each ``DELETE /api/v1/orders/{id}`` commits OrderCancelRequested +
OrderCanceled: four events per order. Each order is cancelled a random
``--cancel-after`` .. ``+ --cancel-spread`` s after its answer (if not every dashboard
has shown it by then, a random 0 .. ``--cancel-spread`` s after the last one does;
at the latest after ``--max-life`` s). Short lives keep the open set small: the
``#orders`` fragment lists only the 50 newest open orders, and a row pushed out of
that list cannot be seen to disappear (such rows give no disappear sample; counted
on stderr). Random lives keep the cancels out of step with the hub's rounds. The
committed rate is measured, not assumed: ``perpdesk_event_log_last_seq`` from
/metrics at the start and end of the measuring window (after ``--warmup`` s of the
same load).

Latency, per (dashboard, order), for orders placed inside the window:
  appear     time the dashboard received the first ``#orders`` fragment holding
             ``<tr data-order-id="ID">``  minus  time the POST's response arrived
  disappear  time it received the first ``#orders`` fragment without that row
             minus  time the DELETE's response arrived
The API answers only after the durable commit (the bus resolves the caller's future
right after the commit, then publishes to the hub), so the answer's arrival is an
upper bound on the commit time: the latencies are understated by however long the
answer took to come back after the commit (well under a millisecond on an idle
loopback; tens to hundreds of ms when the server is saturated, when they can even
come out negative: the hub's round rendered before the answer got out). For that
case stderr also gives the latencies from the engine's own timestamps in the answers
(``created_at`` / ``updated_at``, taken when the command was processed, i.e. before
the commit): those overstate by the commit's duration. The truth lies between.
Receive times are taken when the client's ``recv`` returns, so a busy client
process adds to them; its own CPU use goes to stderr. p50/p99 on stdout are over
the appear and disappear samples together (each also on stderr).

Server CPU: utime+stime of the server process over the window (psutil if installed,
else /proc/<pid>/stat), as a percentage of one core.

stdout (one line):
  clients=100 events_per_s=<measured> p50_ms=... p99_ms=... server_cpu_pct=...
stderr: machine load, request/error counts, per-kind latencies, missed rows,
message sizes and rates, client CPU; with ``--pyspy FILE`` also the server's
hotspots sampled by py-spy during the window.

Target: p99 <= 150 ms. The figures are printed as measured.

Usage:  python bench/ws_fanout.py [--clients 100] [--events-per-s 500] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    HOST,
    RawHttp,
    free_port,
    loadavg,
    note,
    now,
    percentile,
    perpdesk_cmd,
    run_cli,
    start,
    stop,
    wait_ready,
)
from _ws_load import (
    CpuSampler,
    ParseCache,
    last_seq,
    order_bodies,
    pyspy_summary,
)

ORDERS = "/api/v1/orders"
EVENTS_PER_ORDER = 4  # Submitted + Accepted, CancelRequested + Canceled
PYSPY_RATE = 200  # samples per second
ROWS_SHOWN = 50  # app/web/views.py open_orders(limit=50): the newest 50 open orders
AWAY = Decimal("0.05")
USER, PASSWORD = "bench", "benchpass1"
WALL_OFFSET = time.time() - time.monotonic()  # wall = monotonic + offset (same host)


@dataclass(eq=False)
class Placed:
    id: int
    bucket: int
    sent: float
    answered: float
    cancel_started: bool = False
    cancel_sent: float | None = None
    cancel_answered: float | None = None
    cancel_status: int = 0
    due: bool = False
    engine_at: float = 0.0  # created_at / updated_at from the answers (engine clock,
    cancel_engine_at: float = 0.0  # UTC) mapped onto this process's monotonic clock


@dataclass(eq=False)
class Dash:
    n: int
    first_seen: dict[int, float] = field(default_factory=dict)
    gone: dict[int, float] = field(default_factory=dict)
    shown: frozenset[int] | None = None
    messages: int = 0
    chars: int = 0
    max_rows: int = 0
    closed: str | None = None
    maybe_evicted: set[int] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class Bench:
    def __init__(self, args: argparse.Namespace, port: int, key: str, cookie: str,
                 bodies: list[tuple[str, bytes, int]]):
        self.args, self.port, self.cookie, self.bodies = args, port, cookie, bodies
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        self.pool: asyncio.Queue[RawHttp] = asyncio.Queue()
        self.conns = [RawHttp(HOST, port, headers) for _ in range(args.conns)]
        for c in self.conns:
            self.pool.put_nowait(c)
        self.metrics_http = RawHttp(HOST, port, {})
        self.cache = ParseCache()
        self.dashes: list[Dash] = []
        self.seen: Counter[int] = Counter()  # order id -> dashboards that have shown it
        self.placed: dict[int, Placed] = {}
        self.resting = [0] * len(bodies)  # per bucket: placed or in flight, not cancelled
        self.tasks: set[asyncio.Task] = set()
        self.errors: Counter[str] = Counter()
        self.place_lat: list[float] = []
        self.cancel_lat: list[float] = []
        self.queue_wait: list[float] = []  # schedule slip waiting for a free connection
        self.forced = 0  # cancels sent by the --max-life timer, not because all had shown it

    # ---- dashboards ---------------------------------------------------------------------

    @property
    def alive(self) -> int:
        return sum(1 for d in self.dashes if d.closed is None)

    async def dashboard(self, dash: Dash) -> None:
        from websockets.asyncio.client import connect

        url = f"ws://{HOST}:{self.port}/ui/ws?page=dashboard"
        try:
            async with connect(url, additional_headers={"Cookie":
                                                        f"perpdesk_session={self.cookie}"},
                               compression=None if self.args.no_compression else "deflate",
                               max_size=None, proxy=None, open_timeout=60,
                               ping_interval=None, close_timeout=2) as ws:
                async for msg in ws:
                    t = now()
                    dash.messages += 1
                    dash.chars += len(msg)
                    if isinstance(msg, bytes):
                        continue
                    parsed = self.cache.get(msg, t)
                    dash.ready.set()
                    if parsed is None:
                        continue
                    full, added, removed = parsed
                    before = dash.shown
                    if full is not None:
                        ids = full
                    elif before is None:
                        continue  # row changes before the first full render: none come
                    else:
                        ids = (before | added) - removed
                    dash.max_rows = max(dash.max_rows, len(ids))
                    dash.shown = ids
                    if before is None:
                        for oid in ids:
                            dash.first_seen.setdefault(oid, t)
                        continue
                    first_seen = dash.first_seen
                    for oid in ids - before:
                        if oid not in first_seen:
                            first_seen[oid] = t
                            self._on_seen(oid)
                    gone = before - ids
                    if gone:
                        # A full list whose rows are all newer may have pushed it out.
                        full = len(ids) >= ROWS_SHOWN and min(ids)
                        for oid in gone:
                            if oid not in dash.gone:
                                dash.gone[oid] = t
                                if full and full > oid:
                                    dash.maybe_evicted.add(oid)
                dash.closed = f"closed by server: {ws.close_code} {ws.close_reason}"
        except asyncio.CancelledError:
            dash.closed = dash.closed or "closed by the bench"
            raise
        except Exception as exc:
            dash.closed = f"{type(exc).__name__}: {exc}"
        finally:
            dash.ready.set()

    # When to cancel. Each order is due a random --cancel-after .. + --cancel-spread s
    # after its answer; if by then not every dashboard has shown it, it is cancelled a
    # random 0 .. --cancel-spread s after the last one does (or at --max-life). The
    # randomness matters: cancelling right when the dashboards show an order would put
    # every cancel just after a round's push, phase-locked to the hub, and every
    # disappear latency would be a near-worst whole round.

    def _on_seen(self, oid: int) -> None:
        self.seen[oid] += 1
        order = self.placed.get(oid)
        if order is not None and order.due and self.seen[oid] >= self.alive:
            asyncio.get_running_loop().call_later(
                random.uniform(0, self.args.cancel_spread), self._cancel, oid)

    def _due(self, oid: int) -> None:
        order = self.placed[oid]
        order.due = True
        if self.seen[oid] >= self.alive:
            self._cancel(oid)

    # ---- orders -----------------------------------------------------------------------------

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _bucket(self, i: int) -> int:
        """The next bucket, round-robin, skipping those at their resting cap (the demo
        position limits count resting orders): placements are refused otherwise."""
        n = len(self.bodies)
        for k in range(n):
            j = (i + k) % n
            if self.resting[j] < self.bodies[j][2]:
                break
        else:
            j = i % n
        self.resting[j] += 1
        return j

    async def _place(self, i: int, due: float) -> None:
        http = await self.pool.get()
        j = self._bucket(i)
        body = self.bodies[j][1]
        try:
            t0 = now()
            self.queue_wait.append(t0 - due)
            status, content = await http.request("POST", ORDERS, body)
            t1 = now()
        except Exception as exc:
            self.errors[f"place {type(exc).__name__}"] += 1
            self.resting[j] -= 1
            return
        finally:
            self.pool.put_nowait(http)
        self.place_lat.append(t1 - t0)
        if status != 201:
            self.errors[f"place {status} {_code(content)}"] += 1
            self.resting[j] -= 1
            return
        order = json.loads(content)
        if order.get("status") != "accepted":
            self.errors[f"place status {order.get('status')}"] += 1
        oid = int(order["id"])
        self.placed[oid] = Placed(oid, j, t0, t1,
                                  engine_at=self.engine_time(order["created_at"]))
        loop = asyncio.get_running_loop()
        args = self.args
        loop.call_later(args.cancel_after + random.uniform(0, args.cancel_spread), self._due,
                        oid)
        loop.call_later(args.max_life, self._cancel, oid, True)

    def engine_time(self, iso: str | None) -> float:
        if not iso:
            return 0.0
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() - WALL_OFFSET

    def _cancel(self, oid: int, forced: bool = False) -> None:
        order = self.placed.get(oid)
        if order is None or order.cancel_started:
            return  # not answered yet (its answer will cancel it), or on its way
        order.cancel_started = True
        self.forced += forced
        self._spawn(self._cancel_request(order))

    async def _cancel_request(self, order: Placed) -> None:
        http = await self.pool.get()
        try:
            order.cancel_sent = now()
            status, content = await http.request("DELETE", f"{ORDERS}/{order.id}")
            order.cancel_answered = now()
            order.cancel_status = status
        except Exception as exc:
            self.errors[f"cancel {type(exc).__name__}"] += 1
            return
        finally:
            self.pool.put_nowait(http)
        self.resting[order.bucket] -= 1
        self.cancel_lat.append(order.cancel_answered - order.cancel_sent)
        if status != 200:
            self.errors[f"cancel {status} {_code(content)}"] += 1
            return
        answer = json.loads(content)
        if answer.get("status") != "canceled":
            self.errors[f"cancel status {answer.get('status')}"] += 1
        order.cancel_engine_at = self.engine_time(answer.get("updated_at"))

    async def drive(self, until: float) -> int:
        """Open-loop placements at the target rate until ``until``; returns how many."""
        interval = EVENTS_PER_ORDER / self.args.events_per_s
        due = now()
        i = 0
        while due < until:
            delay = due - now()
            if delay > 0:
                await asyncio.sleep(delay)
            self._spawn(self._place(i, due))
            i += 1
            due += interval
        return i

    async def drain(self) -> None:
        """Stop: let placements land and be shown (up to --max-life), cancel whatever
        is still open, wait for it."""
        deadline = now() + self.args.max_life + 0.5
        while now() < deadline and (any(not t.done() for t in self.tasks)
                                    or any(not o.cancel_started
                                           for o in self.placed.values())):
            await asyncio.sleep(0.05)
        while any(not t.done() for t in self.tasks) or any(
                not o.cancel_started for o in self.placed.values()):
            for oid in list(self.placed):
                self._cancel(oid)
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    # ---- the run ------------------------------------------------------------------------------

    async def run(self, server_pid: int) -> dict:
        args = self.args
        with contextlib.suppress(Exception):
            await asyncio.gather(*(c.request("GET", "/healthz") for c in self.conns))
        self.dashes = [Dash(i) for i in range(args.clients)]
        dash_tasks = [asyncio.create_task(self.dashboard(d)) for d in self.dashes]
        try:
            t_open = now()
            await asyncio.wait_for(asyncio.gather(*(d.ready.wait() for d in self.dashes)),
                                   timeout=120)
            broken = [d.closed for d in self.dashes if d.closed]
            if broken:
                raise RuntimeError(f"{len(broken)} dashboards failed to open: {broken[0]}")
            if any(d.shown is None for d in self.dashes):
                raise RuntimeError("the initial render carried no #orders fragment")
            note(f"  {args.clients} dashboards open and rendered in {now() - t_open:.2f} s")

            t_drive = now()
            t_start = t_drive + args.warmup
            t_end = t_start + args.seconds
            driver = asyncio.create_task(self.drive(t_end))
            await asyncio.sleep(max(0.0, t_start - now()))
            seq0 = await last_seq(self.metrics_http)
            cpu = CpuSampler(server_pid)
            cpu.begin()
            client_cpu0 = time.process_time()
            t_start = now()
            pyspy = self._start_pyspy(server_pid)
            placed_total = await driver
            seq1 = await last_seq(self.metrics_http)
            t_end = now()
            server_cpu = cpu.end()
            client_cpu = (time.process_time() - client_cpu0) / (t_end - t_start) * 100
            load = loadavg()
            if pyspy is not None:
                try:
                    await asyncio.to_thread(pyspy.wait, 60)
                except subprocess.TimeoutExpired:
                    pyspy.kill()
                    pyspy.wait(5)

            await self.drain()
            await asyncio.sleep(args.settle)  # the last rounds reach the dashboards
            return {"t_start": t_start, "t_end": t_end, "seq0": seq0, "seq1": seq1,
                    "server_cpu": server_cpu, "cpu_samples": cpu.samples,
                    "cpu_source": cpu.source, "client_cpu": client_cpu, "load": load,
                    "placed_total": placed_total}
        finally:
            for task in dash_tasks:
                task.cancel()
            await asyncio.gather(*dash_tasks, return_exceptions=True)
            await asyncio.gather(*(c.aclose() for c in [*self.conns, self.metrics_http]),
                                 return_exceptions=True)

    def _start_pyspy(self, pid: int) -> subprocess.Popen | None:
        if not self.args.pyspy:
            return None
        exe = shutil.which("py-spy")
        if exe is None:
            note("  --pyspy: py-spy not found; no profile")
            return None
        cmd = [exe, "record", "--pid", str(pid), "--duration", str(int(self.args.seconds)),
               "--rate", str(PYSPY_RATE), "--format", "raw", "--nonblocking", "--output",
               str(self.args.pyspy)]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)


def _code(content: bytes) -> str:
    try:
        return str(json.loads(content)["error"]["code"])
    except Exception:
        return "?"


def analyse(bench: Bench, r: dict) -> str:
    t_start, t_end = r["t_start"], r["t_end"]
    window = t_end - t_start
    events_per_s = (r["seq1"] - r["seq0"]) / window
    measured = [o for o in bench.placed.values() if t_start <= o.sent < t_end]
    appear: list[float] = []
    disappear: list[float] = []
    engine_clock: list[float] = []  # the same, from the engine's timestamps
    never_shown = never_gone = evicted = 0
    for o in measured:
        for d in bench.dashes:
            seen = d.first_seen.get(o.id)
            if seen is None:
                never_shown += 1
            else:
                appear.append(seen - o.answered)
                if o.engine_at:
                    engine_clock.append(seen - o.engine_at)
            if o.cancel_status != 200 or o.cancel_answered is None:
                continue
            gone = d.gone.get(o.id)
            if gone is None:
                never_gone += 1
            elif (o.cancel_sent is not None and gone < o.cancel_sent) or o.id in d.maybe_evicted:
                evicted += 1  # (may have) left the 50-row list while open: not the cancel
            else:
                disappear.append(gone - o.cancel_answered)
                if o.cancel_engine_at:
                    engine_clock.append(gone - o.cancel_engine_at)
    both = appear + disappear
    places_in = sum(1 for o in bench.placed.values() if t_start <= o.answered < t_end)
    cancels_in = sum(1 for o in bench.placed.values()
                     if o.cancel_answered is not None and t_start <= o.cancel_answered < t_end)

    note(f"  window {window:.2f} s: committed seq {r['seq0']} -> {r['seq1']} "
         f"({r['seq1'] - r['seq0']} events, {events_per_s:.0f}/s); answered inside it: "
         f"{places_in} placements + {cancels_in} cancels (x2 events = "
         f"{2 * (places_in + cancels_in)})")
    note(f"  requests: {r['placed_total']} placements scheduled (target "
         f"{bench.args.events_per_s / EVENTS_PER_ORDER:.0f}/s), {len(bench.placed)} placed; "
         f"place p50 {percentile(bench.place_lat, 50):.1f} ms p99 "
         f"{percentile(bench.place_lat, 99):.1f} ms; cancel p50 "
         f"{percentile(bench.cancel_lat, 50):.1f} ms p99 {percentile(bench.cancel_lat, 99):.1f}"
         f" ms; schedule slip p99 {percentile(bench.queue_wait, 99):.1f} ms; "
         f"{bench.forced} cancels forced by --max-life")
    if percentile(bench.place_lat, 50) > 20:
        note("  WARNING: the server answers slowly (saturated?): latencies measured from the "
             "answers understate; see the engine-clock line below")
    for what, n in bench.errors.most_common(10):
        note(f"  error: {what} x{n}")
    for name, samples in (("appear", appear), ("disappear", disappear), ("both", both),
                          ("both from the engine's created_at/updated_at", engine_clock)):
        note(f"  latency {name}: n={len(samples)} p50 {percentile(samples, 50):.1f} ms, "
             f"p90 {percentile(samples, 90):.1f}, p99 {percentile(samples, 99):.1f}, "
             f"max {percentile(samples, 100):.1f}, min {percentile(samples, 0.0001):.1f}")
    note(f"  {len(measured)} orders placed in the window x {len(bench.dashes)} dashboards: "
         f"{never_shown} (dashboard, order) pairs never shown, {never_gone} never seen to "
         f"go, {evicted} left (or may have left) the {ROWS_SHOWN}-row list before their cancel "
         f"(no disappear sample)")
    msgs = sum(d.messages for d in bench.dashes)
    chars = sum(d.chars for d in bench.dashes)
    note(f"  received {msgs} messages ({msgs / max(len(bench.dashes), 1):.0f} per dashboard, "
         f"avg {chars / max(msgs, 1) / 1000:.1f} kB), {bench.cache.distinct} distinct; most "
         f"rows shown at once {max((d.max_rows for d in bench.dashes), default=0)}")
    # Pushes inside the window that every dashboard received: how long one push takes
    # to reach all of them (first to last arrival), and the time between pushes.
    pushes = [(a, b) for a, b, n in bench.cache.arrivals()
              if n >= len(bench.dashes) and t_start <= a < t_end]
    spread = [b - a for a, b in pushes]
    gaps = [y[0] - x[0] for x, y in itertools.pairwise(pushes)]
    note(f"  {len(pushes)} pushes to all dashboards in the window: first-to-last arrival "
         f"p50 {percentile(spread, 50):.1f} ms, p99 {percentile(spread, 99):.1f} ms; "
         f"between pushes p50 {percentile(gaps, 50):.1f} ms, p99 {percentile(gaps, 99):.1f} "
         f"ms, max {percentile(gaps, 100):.1f} ms")
    closed = Counter(d.closed for d in bench.dashes if d.closed
                     and d.closed != "closed by the bench")
    for what, n in closed.most_common(5):
        note(f"  dashboards lost during the run: {what} x{n}")
    samples = r["cpu_samples"]
    note(f"  server cpu {r['server_cpu']:.0f} % of one core ({r['cpu_source']}; 1 s samples "
         f"min {min(samples, default=0):.0f} max {max(samples, default=0):.0f}); bench "
         f"process cpu {r['client_cpu']:.0f} %; load average at the end {r['load']}")
    return (f"clients={len(bench.dashes)} events_per_s={events_per_s:.0f} "
            f"p50_ms={percentile(both, 50):.1f} p99_ms={percentile(both, 99):.1f} "
            f"server_cpu_pct={r['server_cpu']:.0f}")


def login(base: str) -> str:
    with httpx.Client(base_url=base, timeout=30, trust_env=False) as http:
        r = http.post("/login", data={"name": USER, "password": PASSWORD, "next": "/"},
                      follow_redirects=False)
        cookie = r.cookies.get("perpdesk_session")
        if r.status_code != 303 or not cookie:
            raise RuntimeError(f"POST /login: {r.status_code}, no session cookie")
        return cookie


def markets(base: str, key: str) -> list[dict]:
    with httpx.Client(base_url=base, timeout=30, trust_env=False,
                      headers={"authorization": f"Bearer {key}"}) as http:
        rows = http.get("/api/v1/markets").raise_for_status().json()
    return [m for m in rows if m["bid"] and m["ask"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100, help="dashboard WebSockets")
    parser.add_argument("--events-per-s", type=float, default=500.0,
                        help="committed events per second to drive (4 per order)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=2.0, help="load before the window")
    parser.add_argument("--settle", type=float, default=1.5,
                        help="wait after the load for the last fragments")
    parser.add_argument("--conns", type=int, default=64, help="HTTP connections for the load")
    parser.add_argument("--max-life", type=float, default=2.0,
                        help="cancel an order after this long even if not every "
                             "dashboard has shown it")
    parser.add_argument("--cancel-after", type=float, default=0.1,
                        help="cancel an order this + random 0..--cancel-spread s after its "
                             "answer (later if not every dashboard has shown it yet)")
    parser.add_argument("--cancel-spread", type=float, default=0.3, help="see --cancel-after")
    parser.add_argument("--no-compression", action="store_true",
                        help="do not offer permessage-deflate (browsers do offer it)")
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio loop here")
    parser.add_argument("--pyspy", type=Path, metavar="FILE",
                        help="sample the server with py-spy during the window (raw stacks "
                             "to FILE) and print its hotspots on stderr")
    args = parser.parse_args(argv)

    note(f"machine: {os.cpu_count()} cpus, load average {loadavg()}; {args.clients} "
         f"dashboards, {args.events_per_s:g} events/s target, {args.seconds:g} s window "
         f"after {args.warmup:g} s warm-up, compression "
         f"{'off' if args.no_compression else 'offered (deflate)'}")
    tmp = Path(tempfile.mkdtemp(prefix="perpdesk-ws-"))
    server: subprocess.Popen | None = None
    try:
        url = f"sqlite:///{tmp}/ws.db"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PERPDESK_DATABASE_URL": url,
               "PERPDESK_DEMO_CREDENTIALS": "0", "PERPDESK_RATE_LIMIT_PER_S": "0"}
        run_cli(["users", "add", USER, "--role", "operator", "--password", PASSWORD,
                 "--database-url", url], env)
        key = run_cli(["keys", "create", "--role", "operator", "--name", "ws-bench",
                       "--database-url", url], env).strip().splitlines()[0]
        port = free_port()
        log = tmp / "server.log"
        server = start([*perpdesk_cmd(), "serve", "--host", HOST, "--port", str(port)], env,
                       log)
        base = f"http://{HOST}:{port}"
        wait_ready(server, log, base)
        cookie = login(base)
        live = markets(base, key)
        bodies = order_bodies(live, ["demo", "demo-2"], AWAY)
        note(f"  {len(bodies)} order buckets; resting caps from the demo limits "
             f"{min(c for _, _, c in bodies)}..{max(c for _, _, c in bodies)}")

        if not args.no_uvloop:
            with contextlib.suppress(ImportError):
                import uvloop

                asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

        async def go() -> str:
            bench = Bench(args, port, key, cookie, bodies)
            result = await bench.run(server.pid)
            return analyse(bench, result)

        line = asyncio.run(go())
        if args.pyspy and args.pyspy.exists():
            for text in pyspy_summary(args.pyspy, PYSPY_RATE, args.seconds):
                note(text)
        print(line, flush=True)
        return 0
    finally:
        if server is not None:
            stop(server, signal.SIGINT)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
