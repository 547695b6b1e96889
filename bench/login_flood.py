"""Order latency with and without a concurrent login flood.

Starts ``perpdesk serve`` on the embedded default config and a fresh SQLite
database in a temporary directory (no demo credentials, no per-principal rate
limit), with an operator key and a user made beforehand with the perpdesk CLI.
Then, twice for ``--seconds`` each:

  baseline  ``--clients`` closed-loop keep-alive clients POST market orders
            (alternating buy/sell, so positions stay flat) with the API key;
  flood     the same, while ``--flooders`` anonymous connections (over
            ``--flood-procs`` processes) POST /api/v1/auth/login with wrong
            passwords as fast as the server answers, ignoring Retry-After, for
            the real user's name and a few guessed ones, all from 127.0.0.1.

The flood starts with the flood phase, so its window includes the attempts the
login guard lets through before it throttles (each an argon2 hash).

stdout, the last line (the figures):
  baseline_p99_ms=... flood_p99_ms=... ratio=...
with p50 lines before it; stderr carries the details (flood answers by status,
CPU, errors, machine load). Target: ratio <= 2.

Usage:  python bench/login_flood.py [--seconds 10] [--clients 8] [--procs 1]
                                    [--flooders 8] [--flood-procs 2]
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
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from _common import (
    HOST,
    RawHttp,
    cpu_seconds,
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
from api_orders import Phase, live_markets, market_plan, split

USER, USER_PASSWORD = "flood-target", "the-real-password-1"
GUESSED = [USER, "admin", "root", "operator", "demo-operator", "trader"]
LOGIN = "/api/v1/auth/login"


# ---- the flood (its own processes) -------------------------------------------------------------

async def _flooder(port: int, index: int, start_at: float, deadline: float,
                   out: Counter) -> None:
    http = RawHttp(HOST, port, {"content-type": "application/json"})
    await asyncio.sleep(max(0.0, start_at - now()))
    i = 0
    try:
        while now() < deadline:
            name = GUESSED[(index + i) % len(GUESSED)]
            body = json.dumps({"name": name, "password": f"guess-{index}-{i}"}).encode()
            i += 1
            try:
                status, _ = await http.request("POST", LOGIN, body)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                out[f"transport {type(exc).__name__}"] += 1
                await http.aclose()
                continue
            out[str(status)] += 1
    finally:
        await http.aclose()


def _flood_process(port: int, indexes: list[int], start_at: float, duration: float,
                   results: Any) -> None:
    out: Counter = Counter()

    async def run() -> None:
        deadline = start_at + duration
        await asyncio.gather(*(_flooder(port, i, start_at, deadline, out) for i in indexes))

    try:
        asyncio.run(run())
        results.put(dict(out))
    except BaseException as exc:
        results.put({"crash": f"{type(exc).__name__}: {exc}"})
        raise


class Flood:
    """``flooders`` login connections over ``procs`` processes, from ``start_at`` for
    ``duration`` seconds."""

    def __init__(self, port: int, flooders: int, procs: int, start_at: float,
                 duration: float):
        self.results = Phase.ctx.Queue()
        self.procs = []
        for p in range(procs):
            indexes = list(range(p, flooders, procs))
            if not indexes:
                continue
            proc = Phase.ctx.Process(target=_flood_process, daemon=True,
                                     args=(port, indexes, start_at, duration, self.results))
            proc.start()
            self.procs.append(proc)

    def collect(self, timeout: float) -> Counter:
        total: Counter = Counter()
        for _ in self.procs:
            result = self.results.get(timeout=timeout)
            if "crash" in result:
                raise RuntimeError(f"a flood process failed: {result['crash']}")
            total.update(result)
        for proc in self.procs:
            proc.join(10)
        return total

    def kill(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)


# ---- the driver --------------------------------------------------------------------------------

def orders_phase(name: str, args: argparse.Namespace, base: str, headers: dict,
                 workers: list[dict], pid: int, flood_port: int | None) -> list[float]:
    """Run one order phase (with the flood if ``flood_port``); its latencies."""
    cpu0 = cpu_seconds(pid)
    phase = Phase("raw", base, headers, split(workers, args.procs), {}, args.seconds)
    flood = None
    if flood_port is not None:
        # From a little before the orders start to a little after they end.
        flood = Flood(flood_port, args.flooders, args.flood_procs, phase.start_at - 0.5,
                      args.seconds + 1.0)
    try:
        m = phase.collect(args.seconds + 60)
        attempts = flood.collect(args.seconds + 60) if flood else None
    finally:
        phase.kill()
        if flood:
            flood.kill()
    server_cpu = cpu_seconds(pid) - cpu0
    lat = m["lat"]
    note(f"{name}: {m['ok']} orders ok in {m['window']:.2f} s ({m['ok'] / m['window']:.0f}/s), "
         f"p50 {percentile(lat, 50):.2f} ms, p90 {percentile(lat, 90):.2f} ms, "
         f"p99 {percentile(lat, 99):.2f} ms, max {percentile(lat, 100):.1f} ms; server cpu "
         f"{server_cpu / m['window']:.2f} cores, load cpu {m['cpu'] / m['window']:.2f} cores")
    for what, n in m["errors"].most_common(10):
        note(f"  {name} order error: {what} x{n}")
    if attempts is not None:
        total = sum(attempts.values())
        note(f"  {name}: {total} login attempts ({total / (args.seconds + 1):.0f}/s): "
             + ", ".join(f"{k} x{v}" for k, v in attempts.most_common()))
    return lat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--clients", type=int, default=8, help="closed-loop order clients")
    parser.add_argument("--procs", type=int, default=1, help="order load processes")
    parser.add_argument("--flooders", type=int, default=8, help="login flood connections")
    parser.add_argument("--flood-procs", type=int, default=2, help="login flood processes")
    args = parser.parse_args(argv)
    args.procs = max(1, min(args.procs, args.clients))

    note(f"machine: {os.cpu_count()} cpus, load average {loadavg()}; {args.clients} order "
         f"clients, {args.flooders} flooders over {args.flood_procs} processes, "
         f"{args.seconds:g} s per phase")
    tmp = Path(tempfile.mkdtemp(prefix="perpdesk-login-flood-"))
    server: subprocess.Popen | None = None
    try:
        url = f"sqlite:///{tmp}/bench.db"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PERPDESK_DATABASE_URL": url,
               "PERPDESK_DEMO_CREDENTIALS": "0", "PERPDESK_RATE_LIMIT_PER_S": "0"}
        key = run_cli(["keys", "create", "--role", "operator", "--name", "bench",
                       "--database-url", url], env).strip().splitlines()[0]
        run_cli(["users", "add", USER, "--role", "viewer", "--password", USER_PASSWORD,
                 "--database-url", url], env)
        port = free_port()
        log = tmp / "server.log"
        server = start([*perpdesk_cmd(), "serve", "--host", HOST, "--port", str(port)], env,
                       log)
        base = f"http://{HOST}:{port}"
        wait_ready(server, log, base)
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        with httpx.Client(base_url=base, headers=headers, timeout=60, trust_env=False) as http:
            workers = market_plan(live_markets(http), ["demo", "demo-2"], args.clients)
            baseline = orders_phase("baseline", args, base, headers, workers, server.pid, None)
            flood = orders_phase("flood", args, base, headers, workers, server.pid, port)
            # The real user, from the flooded address, after the flood: still throttled
            # there (the flood guessed its name), which is the point.
            r = httpx.post(base + LOGIN, json={"name": USER, "password": USER_PASSWORD},
                           timeout=60, trust_env=False)
            note(f"after the flood, {USER} from 127.0.0.1: {r.status_code} "
                 f"(Retry-After {r.headers.get('retry-after')})")
        b99, f99 = percentile(baseline, 99), percentile(flood, 99)
        ratio = f99 / b99 if b99 > 0 else float("inf")
        print(f"baseline_p50_ms={percentile(baseline, 50):.2f} "
              f"flood_p50_ms={percentile(flood, 50):.2f}", flush=True)
        print(f"baseline_p99_ms={b99:.2f} flood_p99_ms={f99:.2f} ratio={ratio:.2f}", flush=True)
        return 0
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    mp.freeze_support()
    sys.exit(main())
