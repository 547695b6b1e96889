"""Order API throughput and latency over real HTTP, against a bare FastAPI ceiling.

Starts, on loopback:
  * the ceiling: ``bench/_bare_app.py`` (one POST endpoint that validates an
    order-shaped body with pydantic and answers a small JSON 201), served by
    ``python -m uvicorn`` like ``perpdesk serve`` serves the real app;
  * perpdesk itself: ``perpdesk serve`` on the embedded default config (its circuit
    breakers set out of the benchmark's reach by ``bench/breakers_out_of_reach.yaml``:
    the alternating market orders lose on every round trip), a fresh
    SQLite database in a temporary directory, no demo credentials, no rate limit,
    and an operator key made beforehand with ``perpdesk keys create``.

Then it drives each with ``--clients`` concurrent keep-alive HTTP clients (a
minimal HTTP/1.1 client that leaves the server most of a 2-core box; ``--http
httpx`` for httpx.AsyncClient), split over ``--procs`` load processes whose
samples are merged:

  bare           POST the order body to the ceiling
  orders_limit   limit orders 4 % away from the touch (buys below the bid, sells
                 above the ask), every client/venue/symbol/side, smallest valid qty
  orders_market  market orders, alternating buy/sell so positions stay inside limits
  killswitch     during a limit-order storm, ``--rounds`` times: disable trading
                 (global), let the storm run 100 ms, enable trading again

The demo limits (seed 003) count resting orders on the same side against the
position limit, so each (client, venue, symbol, side) bucket rests at most as
many orders as the limits allow; when a bucket is full its owner cancels the
bucket with one ``DELETE /api/v1/orders?...&side=`` before placing the next.
Those cancels are not counted in ``rps``; their number and latency go to stderr.

stdout (the figures; rps counts 2xx answers, latencies cover every request):
  target=bare rps=9800 p50_ms=3.1 p99_ms=4.6 errors=0
  target=orders_limit rps=... p50_ms=... p99_ms=... errors=0
  target=orders_market rps=... p50_ms=... p99_ms=... errors=0
  ratio_limit=0.55
  killswitch p99_ms=... accepted_after_disable=0

``accepted_after_disable`` counts orders the engine accepted after a
disable-trading had committed (its response is sent only then) and before the
next enable-trading committed, read from the event log: exactly the orders a
kill switch must stop. stderr also reports the client-side view — orders sent
after a disable answer and before the next enable was sent — where an order
sent just before the enable may legitimately reach the engine after it.
``killswitch p99_ms`` is over every disable and enable call.
stderr carries the details: error breakdowns, cancels, CPU use, machine load.

Targets (SQLite): orders >= 50 % of bare, p99 <= 20 ms, kill switch p99 <= 25 ms,
zero accepted after disable. The figures are printed as measured.

Usage:  python bench/api_orders.py [--seconds 10] [--clients 32] [--procs 2] [--rounds 50]
                                   [--http raw|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import httpx
from _common import (
    HOST,
    ROOT,
    RawHttp,
    cpu_seconds,
    free_port,
    note,
    now,
    percentile,
    perpdesk_cmd,
    start,
    stop,
    wait_until,
)

BENCH_DIR = Path(__file__).resolve().parent
ORDERS = "/api/v1/orders"
AWAY = Decimal("0.04")  # from the touch: inside the venues' 5 % price bands against mark
HALT_MS = 100  # how long each kill-switch round keeps trading disabled


# ---- load processes -----------------------------------------------------------------


class Bucket:
    """Resting orders of one (client, venue, symbol, side), shared by the workers of one
    process that place into it. Keeps them within the position limits: when full,
    one worker cancels the whole bucket (after in-flight placements land)."""

    def __init__(self, cap: int, cancel_path: str) -> None:
        self.cap, self.cancel_path = cap, cancel_path
        self.resting = self.inflight = 0
        self.cancelling = False
        self.cond = asyncio.Condition()

    async def acquire(self, client: Any, out: Result) -> None:
        async with self.cond:
            while True:
                if not self.cancelling and self.resting + self.inflight < self.cap:
                    self.inflight += 1
                    return
                if not self.cancelling and self.inflight == 0:
                    self.cancelling = True
                    break
                await self.cond.wait()
        try:
            t0 = now()
            r = await client.delete(self.cancel_path)
            out.cancel_lat.append(now() - t0)
            if r.status_code == 200:
                out.canceled += r.json()["count"]
            else:
                out.errors[f"cancel {r.status_code} {_error_code(r)}"] += 1
            out.cancels += 1
        finally:
            async with self.cond:
                self.resting, self.cancelling = 0, False
                self.inflight += 1
                self.cond.notify_all()

    async def release(self, rested: bool) -> None:
        async with self.cond:
            self.inflight -= 1
            self.resting += rested
            self.cond.notify_all()


class Result:
    def __init__(self) -> None:
        self.lat: list[float] = []
        self.ok = 0
        self.errors: Counter[str] = Counter()
        self.expected: Counter[str] = Counter()  # refusals the phase expects (halted)
        # (sent at, http status, order status or error, order id)
        self.orders: list[tuple[float, int, str, int]] = []
        self.cancel_lat: list[float] = []
        self.cancels = self.canceled = 0
        self.end = 0.0


class RawResponse:
    __slots__ = ("content", "status_code")

    def __init__(self, status_code: int, content: bytes):
        self.status_code, self.content = status_code, content

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


class RawClient:
    """httpx-like verbs over ``RawHttp`` for ``--http raw``.

    httpx costs the load processes several times the CPU the bare server spends per
    request, and on a 2-core box the load generator shares the cores with the
    server; the raw client costs far less, so the figures say more about the server.
    """

    def __init__(self, base_url: str, headers: dict[str, str]):
        url = httpx.URL(base_url)
        self.http = RawHttp(url.host, url.port or 80, headers)

    async def request(self, method: str, path: str, content: bytes = b"") -> RawResponse:
        return RawResponse(*await self.http.request(method, path, content))

    async def get(self, path: str) -> RawResponse:
        return await self.request("GET", path)

    async def post(self, path: str, content: bytes = b"", json: Any = None) -> RawResponse:
        if json is not None:
            content = _json_dumps(json)
        return await self.request("POST", path, content)

    async def delete(self, path: str) -> RawResponse:
        return await self.request("DELETE", path)

    async def aclose(self) -> None:
        await self.http.aclose()


def _json_dumps(data: Any) -> bytes:
    return json.dumps(data).encode()


def make_client(kind: str, base_url: str, headers: dict[str, str]) -> Any:
    if kind == "raw":
        return RawClient(base_url, headers)
    return httpx.AsyncClient(base_url=base_url, headers=headers,
                             limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                             timeout=30.0, trust_env=False)


TRANSPORT_ERRORS = (httpx.HTTPError, OSError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError)


def _error_code(r: Any) -> str:
    try:
        return str(r.json()["error"]["code"])
    except Exception:
        return "?"


async def _worker(spec: dict, client: Any, bucket: Bucket | None,
                  job: dict, stopped: asyncio.Event, out: Result) -> None:
    bodies: list[bytes] = spec["bodies"]
    path, record, expected = spec["path"], job["record"], job["expected"]
    deadline = job["start_at"] + job["duration"]
    i = 0
    while not stopped.is_set() and now() < deadline:
        if bucket is not None:
            await bucket.acquire(client, out)
        rested = False
        try:
            t0 = now()
            try:
                r = await client.post(path, content=bodies[i % len(bodies)])
            except TRANSPORT_ERRORS as exc:
                out.errors[f"transport {type(exc).__name__}"] += 1
                continue
            out.lat.append(now() - t0)
            i += 1
            if 200 <= r.status_code < 300:
                out.ok += 1
                rested = True
                if record:
                    order = r.json()
                    out.orders.append((t0, r.status_code, str(order.get("status")),
                                       int(order.get("id", 0))))
            else:
                what = f"{r.status_code} {_error_code(r)}"
                (out.expected if what in expected else out.errors)[what] += 1
                if record:
                    out.orders.append((t0, r.status_code, what, 0))
        finally:
            if bucket is not None:
                await bucket.release(rested)
    out.end = max(out.end, now())


async def _watch(stop_event: Any, stopped: asyncio.Event) -> None:
    while not stopped.is_set():
        if stop_event.is_set():
            stopped.set()
            return
        await asyncio.sleep(0.02)


async def _load(job: dict, stop_event: Any) -> dict:
    out = Result()
    clients = [make_client(job["http"], job["base_url"], job["headers"])
               for _ in job["workers"]]
    buckets = {b: Bucket(cap, cancel) for b, (cap, cancel) in job["buckets"].items()}
    stopped = asyncio.Event()
    try:
        # Open every keep-alive connection before the clock starts.
        await asyncio.gather(*(c.get("/healthz") for c in clients))
        late = now() - job["start_at"]
        if late < 0:
            await asyncio.sleep(-late)
        watcher = asyncio.create_task(_watch(stop_event, stopped)) if stop_event else None
        cpu0 = time.process_time()
        await asyncio.gather(*(_worker(w, c, buckets.get(w["bucket"]), job, stopped, out)
                               for w, c in zip(job["workers"], clients, strict=True)))
        cpu = time.process_time() - cpu0
        stopped.set()
        if watcher is not None:
            await watcher
    finally:
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
    return {"lat": out.lat, "ok": out.ok, "errors": dict(out.errors),
            "expected": dict(out.expected), "orders": out.orders, "end": out.end,
            "cancel_lat": out.cancel_lat, "cancels": out.cancels, "canceled": out.canceled,
            "late": max(late, 0.0), "cpu": cpu}


def _load_process(job: dict, stop_event: Any, results: Any) -> None:
    try:
        import uvloop
        run = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        results.put(run(_load(job, stop_event)))
    except BaseException as exc:
        results.put({"crash": f"{type(exc).__name__}: {exc}"})
        raise


# ---- the driver --------------------------------------------------------------------------


class Phase:
    """One workload over load processes (``groups[p]`` are process p's workers); merges
    what they measured."""

    ctx = mp.get_context("spawn")

    def __init__(self, http: str, base_url: str, headers: dict, groups: list[list[dict]],
                 buckets: dict[str, tuple[int, str]], duration: float, *,
                 record: bool = False, expected: frozenset[str] = frozenset(),
                 stop_event: Any = None):
        self.start_at = now() + 3.0  # spawning and importing httpx takes a while here
        self.results_q = self.ctx.Queue()
        self.procs: list[Any] = []
        for mine in groups:
            if not mine:
                continue
            job = {"http": http, "base_url": base_url, "headers": headers, "workers": mine,
                   "buckets": {b: buckets[b] for b in {w["bucket"] for w in mine} if b},
                   "start_at": self.start_at, "duration": duration, "record": record,
                   "expected": expected}
            proc = self.ctx.Process(target=_load_process, args=(job, stop_event, self.results_q),
                                    daemon=True)
            proc.start()
            self.procs.append(proc)

    def collect(self, timeout: float) -> dict:
        results = [self.results_q.get(timeout=timeout) for _ in self.procs]
        for proc in self.procs:
            proc.join(10)
        crashed = [r["crash"] for r in results if "crash" in r]
        if crashed:
            raise RuntimeError(f"a load process failed: {crashed[0]}")
        merged: dict = {"lat": [], "ok": 0, "errors": Counter(), "expected": Counter(),
                        "orders": [], "cancel_lat": [], "cancels": 0, "canceled": 0,
                        "late": 0.0, "cpu": 0.0, "end": self.start_at}
        for r in results:
            merged["lat"] += r["lat"]
            merged["orders"] += r["orders"]
            merged["cancel_lat"] += r["cancel_lat"]
            merged["errors"].update(r["errors"])
            merged["expected"].update(r["expected"])
            for k in ("ok", "cancels", "canceled", "cpu"):
                merged[k] += r[k]
            merged["late"] = max(merged["late"], r["late"])
            merged["end"] = max(merged["end"], r["end"])
        merged["window"] = merged["end"] - self.start_at
        return merged

    def kill(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def split(workers: list[dict], procs: int) -> list[list[dict]]:
    """Deal workers to processes, every worker of a bucket to the same process (a
    bucket's resting orders are counted inside one process)."""
    groups: list[list[dict]] = [[] for _ in range(procs)]
    owner: dict[str, int] = {}
    for i, w in enumerate(workers):
        bucket = w["bucket"]
        groups[owner.setdefault(bucket, len(owner) % procs) if bucket else i % procs].append(w)
    return groups


def report(target: str, m: dict, server_cpu: float | None) -> tuple[str, float]:
    """The stdout line for a phase (and its details on stderr now), and its rps."""
    rps = m["ok"] / m["window"] if m["window"] > 0 else 0.0
    errors = sum(m["errors"].values())
    line = (f"target={target} rps={rps:.0f} p50_ms={percentile(m['lat'], 50):.1f} "
            f"p99_ms={percentile(m['lat'], 99):.1f} errors={errors}")
    note(line)
    note(f"  {target}: {m['ok']} ok in {m['window']:.2f} s, {len(m['lat'])} requests, "
         f"p90 {percentile(m['lat'], 90):.1f} ms, max {percentile(m['lat'], 100):.1f} ms; "
         f"load cpu {m['cpu'] / m['window']:.2f} cores"
         + (f", server cpu {server_cpu / m['window']:.2f} cores" if server_cpu is not None
            else ""))
    for what, n in m["errors"].most_common(10):
        note(f"  {target} error: {what} x{n}")
    if m["cancels"]:
        note(f"  {target}: {m['cancels']} bucket cancels ({m['canceled']} orders), "
             f"p50 {percentile(m['cancel_lat'], 50):.1f} ms, "
             f"p99 {percentile(m['cancel_lat'], 99):.1f} ms")
    if m["late"] > 0.05:
        note(f"  {target}: a load process started {m['late']:.2f} s late")
    return line, rps


def body(client: str, venue: str, symbol: str, side: str, type_: str, qty: Decimal,
         price: Decimal | None = None) -> bytes:
    data = {"client": client, "venue": venue, "symbol": symbol, "side": side, "type": type_,
            "qty": format(qty, "f")}
    if price is not None:
        data["price"] = format(price, "f")
    return json.dumps(data).encode()


def smallest_qty(m: dict, price: Decimal, margin: Decimal = Decimal(1)) -> Decimal:
    """The smallest qty on the step with qty >= min_qty and qty * price >= min notional."""
    step, min_qty = Decimal(m["step_size"]), Decimal(m["min_qty"])
    steps = (Decimal(m["min_notional"]) * margin / price / step).to_integral_value(ROUND_CEILING)
    return max(min_qty, steps * step)


def limit_plan(markets: list[dict], clients: list[str], n: int
               ) -> tuple[list[dict], dict[str, tuple[int, str]]]:
    """One bucket per (client, venue, symbol, side); worker i places into bucket i mod #."""
    buckets: dict[str, tuple[int, str]] = {}
    specs: list[tuple[str, bytes]] = []
    for client in clients:
        for m in markets:
            tick = Decimal(m["tick_size"])
            for side in ("buy", "sell"):
                if side == "buy":
                    price = (Decimal(m["bid"]) * (1 - AWAY) / tick).to_integral_value(
                        ROUND_FLOOR) * tick
                else:
                    price = (Decimal(m["ask"]) * (1 + AWAY) / tick).to_integral_value(
                        ROUND_CEILING) * tick
                qty = smallest_qty(m, price)
                cap = 10 ** 6
                if m["max_position_size"] is not None:
                    cap = min(cap, int(Decimal(m["max_position_size"]) // qty))
                if m["max_position_notional"] is not None:
                    cap = min(cap, int(Decimal(m["max_position_notional"]) // (qty * price)))
                key = f"{client}/{m['venue']}/{m['symbol']}/{side}"
                query = httpx.QueryParams(client=client, venue=m["venue"], symbol=m["symbol"],
                                          side=side)
                buckets[key] = (cap, f"{ORDERS}?{query}")
                specs.append((key, body(client, m["venue"], m["symbol"], side, "limit", qty,
                                        price)))
    workers = [{"path": ORDERS, "bucket": specs[i % len(specs)][0],
                "bodies": [specs[i % len(specs)][1]]} for i in range(n)]
    return workers, buckets


def market_plan(markets: list[dict], clients: list[str], n: int) -> list[dict]:
    """Workers in pairs on one (client, venue, symbol), one starting with a buy and the
    other with a sell, each alternating: the position stays within one order of flat."""
    combos = []
    for client in clients:
        for m in markets:
            mid = (Decimal(m["bid"]) + Decimal(m["ask"])) / 2
            qty = smallest_qty(m, mid, margin=Decimal("1.2"))  # the mark moves
            buy = body(client, m["venue"], m["symbol"], "buy", "market", qty)
            sell = body(client, m["venue"], m["symbol"], "sell", "market", qty)
            combos.append((buy, sell))
    workers = []
    for i in range(n):
        buy, sell = combos[(i // 2) % len(combos)]
        workers.append({"path": ORDERS, "bucket": None,
                        "bodies": [buy, sell] if i % 2 == 0 else [sell, buy]})
    return workers


def cancel_everything(http: httpx.Client) -> int:
    r = http.delete(ORDERS)
    r.raise_for_status()
    return r.json()["count"]


async def kill_switch(http_kind: str, base_url: str, headers: dict, start_at: float,
                      rounds: int) -> tuple[list[float], list[tuple[float, float]], list[str]]:
    """Disable/enable rounds during the storm: latencies, halt windows, problems."""
    latencies: list[float] = []
    windows: list[tuple[float, float]] = []
    problems: list[str] = []
    reason = {"reason": "bench: kill switch under load"}
    http = make_client(http_kind, base_url, headers)
    try:
        await http.get("/healthz")
        await asyncio.sleep(max(0.0, start_at - now()) + 0.5)
        for _ in range(rounds):
            t0 = now()
            r = await http.post("/api/v1/controls/disable-trading", json=reason)
            disabled_at = now()
            latencies.append(disabled_at - t0)
            if r.status_code != 200 or r.json().get("state") != "halted":
                problems.append(f"disable: {r.status_code} {r.text[:200]}")
            await asyncio.sleep(HALT_MS / 1000)
            enable_sent = now()
            r = await http.post("/api/v1/controls/enable-trading", json=reason)
            latencies.append(now() - enable_sent)
            windows.append((disabled_at, enable_sent))
            if r.status_code != 200 or r.json().get("state") != "active":
                problems.append(f"enable: {r.status_code} {r.text[:200]}")
            await asyncio.sleep(HALT_MS / 1000)
    finally:
        await http.aclose()
    return latencies, windows, problems


def last_seq(http: httpx.Client) -> int:
    seq = 0
    while True:
        page = http.get("/api/v1/events", params={"after": seq, "limit": 5000}).json()
        seq = page["last_seq"]
        if not page["more"]:
            return seq


def halted_when_processed(http: httpx.Client, after: int) -> dict[int, bool]:
    """From the event log (the server's own order of processing): for each order
    submitted after ``after``, was trading globally halted when the engine took it?"""
    halted, out, seq = False, {}, after
    while True:
        page = http.get("/api/v1/events", params={"after": seq, "limit": 5000}).json()
        for item in page["items"]:
            data = item["data"]
            if item["type"] == "TradingStateChanged":
                scope = data.get("scope") or {}
                if scope.get("client") is None and scope.get("venue") is None:
                    halted = data.get("state") == "halted"
            elif item["type"] == "OrderSubmitted":
                out[int(data["order_id"])] = halted
        seq = page["last_seq"]
        if not page["more"]:
            return out


def measure(target: str, pid: int, args: argparse.Namespace, base: str, headers: dict,
            workers: list[dict], buckets: dict) -> tuple[str, float]:
    cpu0 = cpu_seconds(pid)
    phase = Phase(args.http, base, headers, split(workers, args.procs), buckets, args.seconds)
    try:
        m = phase.collect(args.seconds + 60)
    finally:
        phase.kill()
    return report(target, m, cpu_seconds(pid) - cpu0)


def storm(args: argparse.Namespace, base: str, headers: dict, workers: list[dict],
          buckets: dict, http: httpx.Client) -> str:
    """The kill-switch phase: control calls from here while the load processes storm."""
    first_seq = last_seq(http)
    stop_event = Phase.ctx.Event()
    phase = Phase(args.http, base, headers, split(workers, args.procs), buckets, 600.0,
                  record=True, expected=frozenset({"400 TRADING_HALTED"}),
                  stop_event=stop_event)
    try:
        try:
            latencies, windows, problems = asyncio.run(
                kill_switch(args.http, base, headers, phase.start_at, args.rounds))
            time.sleep(0.2)
        finally:
            stop_event.set()
        m = phase.collect(120)
    finally:
        phase.kill()

    def in_window(t: float) -> bool:
        return any(d <= t < e for d, e in windows)

    after = [o for o in m["orders"] if 200 <= o[1] < 300 and in_window(o[0])]
    inside = sum(1 for o in m["orders"] if in_window(o[0]))
    # "Accepted after disable" is judged where it happens: in the event log, an order
    # the engine accepted after a disable-trading committed and before the next
    # enable-trading committed. (Timing on the client side cannot tell: an order sent
    # just before an enable may reach the engine after it, and rightly be accepted.)
    processed = halted_when_processed(http, first_seq)
    while_halted = sum(1 for o in m["orders"] if 200 <= o[1] < 300 and processed.get(o[3]))
    line = (f"killswitch p99_ms={percentile(latencies, 99):.1f} "
            f"accepted_after_disable={while_halted}")
    note(line)
    note(f"  killswitch: {len(latencies)} control calls, p50 {percentile(latencies, 50):.1f} "
         f"ms, max {percentile(latencies, 100):.1f} ms; storm: {len(m['orders'])} orders in "
         f"{m['window']:.2f} s, {m['ok']} accepted, {inside} sent inside halt windows, "
         f"{sum(m['expected'].values())} refused TRADING_HALTED; storm order p50 "
         f"{percentile(m['lat'], 50):.1f} ms, p99 {percentile(m['lat'], 99):.1f} ms")
    overtaken = sum(1 for o in after if processed.get(o[3]) is False)
    note(f"  client side: {len(after)} orders were sent after a disable answer and before the "
         f"next enable was sent and got accepted; {overtaken} of them reached the engine "
         f"after that enable (the event log says which)")
    windows_by_start = sorted(windows)
    for t, _, status, order_id in after[:10]:
        d, e = max((w for w in windows_by_start if w[0] <= t), default=(t, t))
        note(f"  accepted after disable: order {order_id} ({status}) sent "
             f"{(t - d) * 1000:.1f} ms after the disable answer, {(e - t) * 1000:.1f} ms "
             f"before the enable was sent; engine halted then: {processed.get(order_id)}")
    for p in problems[:10]:
        note(f"  control call problem: {p}")
    for what, n in m["errors"].most_common(10):
        note(f"  storm error: {what} x{n}")
    if m["cancels"]:
        note(f"  storm: {m['cancels']} bucket cancels ({m['canceled']} orders)")
    return line


def live_markets(http: httpx.Client) -> list[dict]:
    return [m for m in http.get("/api/v1/markets").raise_for_status().json()
            if m["bid"] and m["ask"]]


def gc_figures(http: httpx.Client) -> dict[str, float]:
    """The server's garbage collector, from /metrics: passes per generation, the longest
    pause and its CPU time (ms), and the objects frozen out of its passes."""
    text = http.get("/metrics").raise_for_status().text
    out = {"0": 0.0, "1": 0.0, "2": 0.0, "max_ms": 0.0, "max_cpu_ms": 0.0, "frozen": 0.0}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("perpdesk_gc_passes_total{"):
            out[name.split('"')[1]] = float(value)
        elif name.startswith("perpdesk_gc_pause_max_seconds{"):
            out["max_ms"] = max(out["max_ms"], float(value) * 1000)
        elif name.startswith("perpdesk_gc_pause_max_cpu_seconds{"):
            out["max_cpu_ms"] = max(out["max_cpu_ms"], float(value) * 1000)
        elif name == "perpdesk_gc_frozen_objects":
            out["frozen"] = float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput phase")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--procs", type=int, default=2, help="load-generating processes")
    # 50 rounds of 200 ms: the storm lasts 10 s like the other phases, and the p99 is
    # taken over 100 control calls (over 40 it would be the slowest one).
    parser.add_argument("--rounds", type=int, default=50, help="kill-switch rounds")
    parser.add_argument("--config", type=Path, default=BENCH_DIR / "breakers_out_of_reach.yaml",
                        help="a YAML configuration for perpdesk serve (default: the shipped "
                             "risk profile with its breakers out of reach; "
                             "bench/risk_on.yaml, bench/risk_off.yaml)")
    parser.add_argument("--http", choices=("httpx", "raw"), default="raw",
                        help="load client: a minimal keep-alive HTTP/1.1 client (default; "
                             "it leaves the 2-core box's CPU to the server), or "
                             "httpx.AsyncClient")
    args = parser.parse_args(argv)
    args.procs = max(1, min(args.procs, args.clients))

    note(f"machine: {os.cpu_count()} cpus, load average "
         f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.clients} {args.http} clients "
         f"over {args.procs} load processes, {args.seconds:g} s per phase")
    tmp = Path(tempfile.mkdtemp(prefix="perpdesk-bench-"))
    running: list[subprocess.Popen] = []
    lines: dict[str, str] = {}
    try:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}

        # 1. The ceiling, served like perpdesk (uvicorn, same loop/parser, no access log).
        port = free_port()
        log = tmp / "bare.log"
        bare = start([sys.executable, "-m", "uvicorn", "_bare_app:app", "--app-dir",
                      str(BENCH_DIR), "--host", HOST, "--port", str(port),
                      "--no-access-log"], env, log)  # as perpdesk serve runs by default
        running.append(bare)
        base = f"http://{HOST}:{port}"
        sample = body("demo", "paper-binance", "BTC-PERP", "buy", "limit", Decimal("0.001"),
                      Decimal("57000.0"))
        hdr = {"content-type": "application/json"}
        wait_until(bare, log, lambda h: h.post(base + ORDERS, content=sample,
                                               headers=hdr).status_code == 201, "bare app")
        workers = [{"path": ORDERS, "bucket": None, "bodies": [sample]}
                   for _ in range(args.clients)]
        lines["bare"], bare_rps = measure("bare", bare.pid, args, base, hdr, workers, {})
        stop(bare)

        # 2. perpdesk on the embedded default and a fresh SQLite database.
        url = f"sqlite:///{tmp}/bench.db"
        env = {**env, "PERPDESK_DATABASE_URL": url, "PERPDESK_DEMO_CREDENTIALS": "0",
               "PERPDESK_RATE_LIMIT_PER_S": "0"}
        if args.config is not None:
            env["PERPDESK_CONFIG"] = str(args.config.resolve())
        created = subprocess.run([*perpdesk_cmd(), "keys", "create", "--role", "operator",
                                  "--name", "bench", "--database-url", url],
                                 env=env, cwd=ROOT, capture_output=True, text=True, check=True)
        key = created.stdout.strip().splitlines()[0]
        port = free_port()
        log = tmp / "server.log"
        server = start([*perpdesk_cmd(), "serve", "--host", HOST, "--port", str(port)], env, log)
        running.append(server)
        base = f"http://{HOST}:{port}"
        wait_until(server, log, lambda h: h.get(base + "/readyz").status_code == 200,
                   "perpdesk serve")
        auth = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        clients = ["demo", "demo-2"]
        with httpx.Client(base_url=base, headers=auth, timeout=60, trust_env=False) as http:
            markets = live_markets(http)
            gc_start = gc_figures(http)
            note("touch: " + ", ".join(f"{m['venue']}:{m['symbol']} {m['bid']}/{m['ask']}"
                                       for m in markets))

            # 2a. Resting limit orders away from the touch.
            workers, buckets = limit_plan(markets, clients, args.clients)
            lines["orders_limit"], limit_rps = measure("orders_limit", server.pid, args, base,
                                                       auth, workers, buckets)
            note(f"  canceled {cancel_everything(http)} resting orders after the phase")

            # 2b. The kill switch during a limit-order storm (before the market phase, whose
            # leftover positions would shrink the room the position limits leave).
            workers, buckets = limit_plan(live_markets(http), clients, args.clients)
            lines["killswitch"] = storm(args, base, auth, workers, buckets, http)
            http.post("/api/v1/controls/enable-trading",
                      json={"reason": "bench: done"}).raise_for_status()
            note(f"  canceled {cancel_everything(http)} resting orders after the storm")

            # 2c. Market orders.
            workers = market_plan(live_markets(http), clients, args.clients)
            lines["orders_market"], _ = measure("orders_market", server.pid, args, base, auth,
                                                workers, {})
            positions = http.get("/api/v1/positions").raise_for_status().json()
            note(f"  {len(positions)} positions left open by the market phase")
            gc_end = gc_figures(http)
            note(f"server gc: passes young={gc_end['0']:.0f} middle={gc_end['1']:.0f} "
                 f"sweeps={gc_end['2']:.0f}, longest pause {gc_end['max_ms']:.1f} ms (cpu "
                 f"{gc_end['max_cpu_ms']:.1f} ms); frozen "
                 f"objects {gc_start['frozen']:.0f} at start, {gc_end['frozen']:.0f} at the end")

        slow = [line.strip() for line in log.read_text(errors="replace").splitlines()
                if "gc pass over generation" in line]
        note(f"server gc: {len(slow)} passes over 10 ms" + "".join(
            f"\n  {line}" for line in slow[:20]))
        lines["ratio"] = f"ratio_limit={limit_rps / bare_rps if bare_rps else 0.0:.2f}"
        for name in ("bare", "orders_limit", "orders_market", "ratio", "killswitch"):
            print(lines[name], flush=True)
        return 0
    finally:
        for proc in running:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
