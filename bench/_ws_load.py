"""Helpers for ``bench/ws_fanout.py``: a lean HTTP/1.1 client, the ``#orders`` fragment
parser, server process management, CPU sampling, percentiles and py-spy summaries."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path

from _common import (
    RawHttp,
    cpu_seconds,
    now,
)

# ---- HTTP -----------------------------------------------------------------------------

METRIC_SEQ = re.compile(rb"^perpdesk_event_log_last_seq\s+([0-9.eE+]+)\s*$", re.M)


async def last_seq(http: RawHttp) -> int:
    """``perpdesk_event_log_last_seq`` from /metrics (the bus's last committed seq)."""
    await http.aclose()  # a fresh connection: uvicorn drops idle keep-alives after 5 s
    status, content = await http.request("GET", "/metrics")
    match = METRIC_SEQ.search(content)
    if status != 200 or match is None:
        raise RuntimeError(f"/metrics: {status}, no perpdesk_event_log_last_seq")
    return int(float(match.group(1)))


# ---- the #orders fragment ----------------------------------------------------------------

ORDERS_ROOT = '<div id="orders"'
FULL_ROW = re.compile(r'<tr id="orders-body-(\d+)"')
ROW_INSERT = re.compile(r'<tbody hx-swap-oob="afterbegin:#orders-body"><tr id="orders-body-(\d+)"')
ROW_DELETE = re.compile(r'<tr id="orders-body-(\d+)" hx-swap-oob="delete">')

Changes = tuple[frozenset[int] | None, frozenset[int], frozenset[int]]


def order_ids(html: str) -> Changes | None:
    """What one pushed message does to the dashboard's open-orders table:
    ``(full, added, removed)`` — ``full`` is the whole row set when the message
    re-renders the ``#orders`` fragment (``<div id="orders" ... hx-swap-oob>``),
    else None; ``added``/``removed`` are rows inserted at the top of
    ``#orders-body`` or deleted (the hub updates that table row by row).
    None when the message does not touch the table."""
    full = None
    start = html.find(ORDERS_ROOT)
    if start >= 0:
        end = html.find("</table>", start)
        full = frozenset(int(x) for x in FULL_ROW.findall(html, start,
                                                          end if end > 0 else len(html)))
    added = frozenset(int(x) for x in ROW_INSERT.findall(html))
    removed = frozenset(int(x) for x in ROW_DELETE.findall(html))
    if full is None and not added and not removed:
        return None
    return full, added, removed


class ParseCache:
    """Every dashboard with the same view receives the same text each round: parse it
    once. Keyed by the text itself (equal strings from different sockets hit). Also
    notes when each distinct text first and last arrived (the fan-out's spread)."""

    def __init__(self, size: int = 64):
        self.size = size
        self.items: dict[str, list] = {}  # text -> [ids, first at, last at, receivers]
        self.done: list[tuple[float, float, int]] = []  # evicted (first, last, receivers)

    def get(self, html: str, t: float) -> Changes | None:
        entry = self.items.get(html)
        if entry is None:
            if len(self.items) >= self.size:
                for key in list(self.items)[: self.size // 2]:
                    _, first, last, n = self.items.pop(key)
                    self.done.append((first, last, n))
            entry = self.items[html] = [order_ids(html), t, t, 0]
        entry[2] = t
        entry[3] += 1
        return entry[0]

    def arrivals(self) -> list[tuple[float, float, int]]:
        """(first, last, receivers) per distinct text, in order of first arrival."""
        return sorted(self.done + [(e[1], e[2], e[3]) for e in self.items.values()])

    @property
    def distinct(self) -> int:
        return len(self.done) + len(self.items)


# ---- order bodies ----------------------------------------------------------------------------


def smallest_qty(m: dict, price: Decimal) -> Decimal:
    step, min_qty = Decimal(m["step_size"]), Decimal(m["min_qty"])
    steps = (Decimal(m["min_notional"]) / price / step).to_integral_value(ROUND_CEILING)
    return max(min_qty, steps * step)


def order_bodies(markets: list[dict], clients: list[str], away: Decimal
                 ) -> list[tuple[str, bytes, int]]:
    """One (bucket, body, cap) per (client, venue, symbol, side): a limit order ``away``
    from the touch (buys below the bid, sells above the ask) at the smallest valid qty;
    cap = how many may rest at once inside the demo position limits."""
    import json

    out = []
    for client in clients:
        for m in markets:
            tick = Decimal(m["tick_size"])
            for side in ("buy", "sell"):
                if side == "buy":
                    price = (Decimal(m["bid"]) * (1 - away) / tick).to_integral_value(
                        ROUND_FLOOR) * tick
                else:
                    price = (Decimal(m["ask"]) * (1 + away) / tick).to_integral_value(
                        ROUND_CEILING) * tick
                qty = smallest_qty(m, price)
                cap = 10 ** 6
                if m.get("max_position_size") is not None:
                    cap = min(cap, int(Decimal(m["max_position_size"]) // qty))
                if m.get("max_position_notional") is not None:
                    cap = min(cap, int(Decimal(m["max_position_notional"]) // (qty * price)))
                body = json.dumps({"client": client, "venue": m["venue"], "symbol": m["symbol"],
                                   "side": side, "type": "limit", "qty": format(qty, "f"),
                                   "price": format(price, "f")}).encode()
                out.append((f"{client}/{m['venue']}/{m['symbol']}/{side}", body, cap))
    return out


# ---- processes -----------------------------------------------------------------------------


class CpuSampler:
    """CPU of a process over the run as a percentage of one core (psutil if installed,
    else /proc deltas), plus one-second samples for the spread."""

    def __init__(self, pid: int):
        self.pid = pid
        self.samples: list[float] = []
        self._task: asyncio.Task | None = None
        try:
            import psutil  # type: ignore[import-not-found]

            proc = psutil.Process(pid)

            def read() -> float:
                t = proc.cpu_times()
                return t.user + t.system

            self.read = read
            self.source = "psutil"
        except ImportError:
            self.read = lambda: cpu_seconds(pid)
            self.source = "/proc/<pid>/stat"

    def begin(self) -> None:
        self.t0, self.c0 = now(), self.read()
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        t, c = self.t0, self.c0
        while True:
            await asyncio.sleep(1.0)
            t1, c1 = now(), self.read()
            self.samples.append((c1 - c) / (t1 - t) * 100)
            t, c = t1, c1

    def end(self) -> float:
        if self._task is not None:
            self._task.cancel()
        return (self.read() - self.c0) / (now() - self.t0) * 100


# ---- figures ---------------------------------------------------------------------------------


# Frames worth a line of their own: the hub's rounds and fan-out, rendering, the
# WebSocket send path, HTTP handling and the durable append (a worker thread).
FOCUS = ("LiveHub._run", "LiveHub._push", "LiveHub._safe_render", "render_fragment",
         "fragment_context", "Template.render", "LiveHub.serve", "WebSocket.send_text",
         "PerMessageDeflate.encode", "RequestResponseCycle.run_asgi", "EventLog.append",
         "project", "CommandBus._process", "CommandBus._broadcast", "Broadcaster.publish")


def pyspy_summary(path: Path, rate: int, seconds: float, top: int = 25) -> list[str]:
    """Self and inclusive time by function from py-spy's ``--format raw`` (collapsed
    stacks ``frame;frame;... count``, outermost first; idle samples excluded), as a
    share of the non-idle samples."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in (_frame(f) for f in stack.split(";")) if f]
        if not frames:
            continue
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return ["py-spy: no samples"]

    def row(f: str, n: int) -> str:
        return f"    {n / total * 100:5.1f}%  {f}"

    # A thread waiting for the CPU or the GIL is not idle to py-spy: on a busy machine
    # the busy samples exceed the CPU time actually used. Shares, not cores.
    out = [f"py-spy: {total} non-idle samples at {rate} Hz over {seconds:g} s, all threads "
           f"(= {total / rate / seconds:.2f} threads non-idle on average); % of those:",
           "  focus (inclusive):"]
    for name in FOCUS:
        hits = [(f, n) for f, n in incl.items() if f.split(" (")[0] == name]
        out += [row(f, n) for f, n in sorted(hits, key=lambda x: -x[1])[:2]]
    out.append("  top self time:")
    out += [row(f, n) for f, n in own.most_common(top)]
    out.append("  top inclusive time:")
    out += [row(f, n) for f, n in incl.most_common(top * 2)]
    return out


def _frame(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (…/file.py)" without the line
    frame = frame.strip()
    if not frame or frame.startswith("process ") or frame.startswith("thread "):
        return ""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    for marker in ("/site-packages/", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{name} ({file})"

