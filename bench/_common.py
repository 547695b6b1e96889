"""What the benchmarks share: starting and stopping the server, the perpdesk CLI,
CPU accounting from /proc, percentiles, free ports, machine load."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
now = time.monotonic  # CLOCK_MONOTONIC on Linux: one clock for every process


def note(text: str) -> None:
    """Details go to stderr; stdout carries only the figures."""
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def perpdesk_cmd() -> list[str]:
    exe = shutil.which("perpdesk")
    return [exe] if exe else [sys.executable, "-m", "app.cli"]


def run_cli(args: list[str], env: dict) -> str:
    done = subprocess.run([*perpdesk_cmd(), *args], env=env, cwd=ROOT, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"perpdesk {' '.join(args[:2])} failed ({done.returncode}):\n"
                           f"{done.stdout}{done.stderr}")
    return done.stdout


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def stop(proc: subprocess.Popen, sig_first: int | None = None) -> None:
    if proc.poll() is not None:
        return
    if sig_first is not None:
        proc.send_signal(sig_first)
    else:
        proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def wait_until(proc: subprocess.Popen, log: Path, check: Callable[[httpx.Client], bool],
               what: str, timeout: float = 60) -> None:
    deadline = now() + timeout
    with httpx.Client(timeout=5, trust_env=False) as http:
        while now() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited ({proc.returncode}):\n"
                                   + log.read_text(errors="replace")[-3000:])
            with contextlib.suppress(httpx.HTTPError):
                if check(http):
                    return
            time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s:\n"
                       + log.read_text(errors="replace")[-3000:])


def wait_ready(proc: subprocess.Popen, log: Path, base: str, timeout: float = 90) -> None:
    wait_until(proc, log, lambda http: http.get(base + "/readyz").status_code == 200,
               "server", timeout)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile of ``samples`` (seconds) in milliseconds."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] * 1000


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class RawHttp:
    """One keep-alive HTTP/1.1 connection, one request at a time. Far cheaper per request
    than httpx, so the load generator leaves the cores to the server. Handles what
    uvicorn sends here: Content-Length bodies, keep-alive, ``Connection: close``."""

    def __init__(self, host: str, port: int, headers: dict[str, str]):
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in
                            {"host": f"{host}:{port}", **headers}.items()).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._requests: dict[tuple[str, str, bytes], bytes] = {}  # load loops repeat them

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                                            socket.TCP_NODELAY, 1)
        assert self.reader is not None
        try:
            self.writer.write(self._encode(method, path, body))
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            content = await self.reader.readexactly(length) if length else b""
        except BaseException:
            await self.aclose()
            raise
        if close:
            await self.aclose()
        return status, content

    def _encode(self, method: str, path: str, body: bytes) -> bytes:
        key = (method, path, body)
        raw = self._requests.get(key)
        if raw is None:
            raw = (f"{method} {path} HTTP/1.1\r\n".encode() + self.head
                   + f"content-length: {len(body)}\r\n\r\n".encode() + body)
            if len(self._requests) < 64:
                self._requests[key] = raw
        return raw

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None
