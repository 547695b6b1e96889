"""End to end: a real ``perpdesk serve`` subprocess, the monitor in a real terminal.

The server runs on a free port with its own SQLite file and the synthetic feed;
the monitor runs in tmux (a private socket) when tmux is installed, else in a
pseudo-terminal from the ``pty`` module (force that with
``PERPDESK_TEST_TERMINAL=pty``). The test reads what the terminal shows:

1. a market order → the position's row with a P&L figure, status LIVE;
2. close-all → the exit under Recent Exits, no open positions, trading reduce-only;
   The footer's ``seq`` is the server's own last sequence number;
3. the server is killed → RECONNECTING, and the footer says why in full
   ("cannot connect to http://127.0.0.1:<port> (connection refused); retrying in
   N s"); restarted on the same port → LIVE again, and the server log shows the
   monitor resumed with ``since=<the last seq it showed>``;
4. ``q`` quits the monitor cleanly.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

COLS, LINES = 110, 45
MONITOR_CODE = "import sys; from app.monitor import main; sys.exit(main(sys.argv[1:]))"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, check: Callable[[], object], timeout: float,
               describe: Callable[[], str] = lambda: "") -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{describe()}")
        time.sleep(0.2)


class Server:
    """``perpdesk serve`` as a subprocess; output to a log file."""

    def __init__(self, tmp: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.db = f"sqlite:///{tmp}/m.db"
        self.log = tmp / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "PERPDESK_DATABASE_URL": self.db, "PERPDESK_DEMO_CREDENTIALS": "0",
               "PERPDESK_FEED_STEP_MS": "250"}
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
            return False

        wait_until("the server to be ready", ready, 40, lambda: self.log.read_text()[-3000:])

    def kill(self) -> None:
        """Hard kill (a crash): the monitor's socket drops at once."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


class TmuxTerminal:
    """The monitor in a detached tmux session on a private socket (own tmux server)."""

    def __init__(self, argv: list[str], cwd: str) -> None:
        self.socket = f"perpdesk-monitor-test-{uuid.uuid4().hex[:8]}"
        self.session = "monitor"
        # tmux's own #{pane_dead_status} is sometimes never filled in (3.3a): the shell
        # writes the exit status to a file instead.
        self.status_file = Path(tempfile.mkdtemp(prefix="monitor-tmux-")) / "status"
        command = " ".join(_quote(a) for a in argv)
        self._tmux("new-session", "-d", "-s", self.session, "-x", str(COLS), "-y", str(LINES),
                   "-c", cwd, f"{command}; echo $? > {_quote(str(self.status_file))}; sleep 60")

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True,
                              capture_output=True, text=True, timeout=10).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.session)

    def send(self, keys: str) -> None:
        self._tmux("send-keys", "-t", self.session, "-l", keys)

    def exit_status(self) -> int | None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(self.status_file.read_text())
        return None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=10, check=False)
        shutil.rmtree(self.status_file.parent, ignore_errors=True)


class PtyTerminal:
    """The monitor on a pseudo-terminal; ``screen()`` is the last full frame drawn."""

    def __init__(self, argv: list[str], cwd: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLS, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLS),
               "LINES": str(LINES)}
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                                     env=env, start_new_session=True)
        os.close(slave)
        self.master = master
        self.buffer = ""
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.buffer = (self.buffer + data.decode(errors="replace"))[-200_000:]

    def screen(self) -> str:
        with self.lock:
            frames = self.buffer.split("\x1b[H")  # rich's Live homes the cursor per frame
        frame = frames[-1] if len(frames) < 2 or "Recent Exits" in frames[-1] else frames[-2]
        return ANSI.sub("", frame)

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def exit_status(self) -> int | None:
        return self.proc.poll()

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            os.close(self.master)


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def open_terminal(argv: list[str], cwd: str):
    kind = os.environ.get("PERPDESK_TEST_TERMINAL") or ("tmux" if shutil.which("tmux") else "pty")
    return TmuxTerminal(argv, cwd) if kind == "tmux" else PtyTerminal(argv, cwd)


def section(screen: str, title: str) -> str:
    """The lines of one panel: from its title to the panel's bottom border."""
    lines = screen.splitlines()
    start = next((i for i, line in enumerate(lines) if title in line), None)
    if start is None:
        return ""
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("└")),
               len(lines) - 1)
    return "\n".join(lines[start:end + 1])


@pytest.fixture
def server(tmp_path: Path):
    srv = Server(tmp_path, free_port())
    try:
        yield srv
    finally:
        srv.kill()


def create_key(server: Server) -> str:
    out = subprocess.run([sys.executable, "-m", "app.cli", "keys", "create", "--role",
                          "operator", "--database-url", server.db],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip().splitlines()[0]


def test_monitor_shows_positions_exits_and_survives_a_server_restart(server: Server):
    key = create_key(server)
    server.start()
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                       timeout=10)
    order = api.post("/api/v1/orders", json={
        "client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP", "side": "buy",
        "type": "market", "qty": "0.002"})
    assert order.status_code in (200, 201), order.text
    assert order.json()["status"] == "filled"

    cwd = str(Path(__file__).resolve().parents[2])
    term = open_terminal([sys.executable, "-c", MONITOR_CODE, "--url", server.url, "--key", key,
                          "--rows", "5"], cwd)
    try:
        def shows(predicate: Callable[[str], object]) -> Callable[[], object]:
            return lambda: predicate(term.screen())

        # 1. the open position, with its P&L, on a live stream
        def position_row(screen: str) -> str | None:
            active = section(screen, "Active Positions")
            row = next((line for line in active.splitlines() if "BTC-PERP" in line), None)
            if row and re.search(r"[+-]?\$\d[\d,]*\.\d+", row) and "LIVE" in screen:
                return row
            return None

        row = wait_until("the position on screen", shows(position_row), 30, term.screen)
        assert "paper-binance" in row and "long" in row and "0.002" in row
        screen = term.screen()
        assert "Active Positions (1 total)" in screen
        # demo, demo-2 and arb (the arbitrage's), 20,000 per venue each
        assert "Capital: $120,000.00" in screen
        assert re.search(r"Trades: 0 \| Win Rate: — \| Cumulative P&L: -\$0\.\d+", screen), screen
        assert "Realistic APR: —" in screen  # the book is minutes old
        assert "Leg-Out Events: 0" in screen

        # 2. close-all: the exit appears under Recent Exits
        closed = api.post("/api/v1/controls/close-all", json={"reason": "monitor e2e"})
        assert closed.status_code == 200, closed.text

        def exit_row(screen: str) -> str | None:
            exits = section(screen, "Recent Exits")
            row = next((line for line in exits.splitlines() if "BTC-PERP" in line), None)
            if row and "close_all" in row and "Active Positions (0 total)" in screen:
                return row
            return None

        row = wait_until("the exit on screen", shows(exit_row), 15, term.screen)
        assert re.search(r"[+-]?\$\d[\d,]*\.\d+", row), row
        assert "long" in row
        screen = term.screen()
        assert "Recent Exits (1)" in screen
        assert "no open positions" in screen
        assert "Trades: 1" in screen
        assert "trading: global reduce_only" in screen
        # The footer's seq is where the server's event log is (not 0, not behind).
        def seq_is_the_servers() -> bool:
            shown = re.search(r"seq (\d+)", term.screen())
            return bool(shown) and int(shown.group(1)) == last_seq(api)

        wait_until("the server's last seq in the footer", seq_is_the_servers, 15,
                   term.screen)
        seq_before = int(re.search(r"seq (\d+)", term.screen()).group(1))
        assert seq_before > 0

        # 3. the server dies: reconnecting, and why, in words; it comes back: live,
        # resumed with since=<seq>
        server.kill()
        wait_until("RECONNECTING", shows(lambda s: "RECONNECTING" in s), 15, term.screen)
        refused = re.compile(
            rf"REST and WebSocket: cannot connect to {re.escape(server.url)} "
            r"\(connection refused\); retrying (in \d+ s|now)")
        wait_until("the reason in full", shows(lambda s: refused.search(" ".join(s.split()))),
                   15, term.screen)
        assert "…" not in term.screen().rstrip().splitlines()[-1]  # nothing cut off
        assert "BTC-PERP" in section(term.screen(), "Recent Exits")  # last data stays
        server.start()
        wait_until("LIVE again", shows(lambda s: "LIVE" in s and "RECONNECTING" not in s), 30,
                   term.screen)
        resumed = re.findall(r"WebSocket /ws\?since=(\d+)", server.log.read_text())
        assert resumed and int(resumed[-1]) >= seq_before, server.log.read_text()[-2000:]
        assert f"key={key}" not in server.log.read_text()  # the key never hits the log

        # 4. q quits cleanly
        term.send("q")
        wait_until("the monitor to exit", lambda: term.exit_status() is not None, 10,
                    term.screen)
        assert term.exit_status() == 0
    finally:
        term.close()
        api.close()


def last_seq(api: httpx.Client) -> int:
    """The server's last committed sequence number, paging /api/v1/events to the end."""
    after = 0
    while True:
        page = api.get("/api/v1/events", params={"after": after, "limit": 5000}).json()
        after = page["last_seq"]
        if not page["more"]:
            return after


def test_server_stops_promptly_while_a_monitor_is_connected(server: Server):
    """A running monitor holds /ws open; stopping the server (SIGTERM) must not hang
    until uvicorn's 10 s graceful-shutdown timeout and then cancel the handler."""
    from websockets.sync.client import connect

    key = create_key(server)
    server.start()
    assert server.proc is not None
    ws_url = server.url.replace("http://", "ws://") + "/ws"
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {key}"},
                 open_timeout=10) as ws:
        assert '"ready"' in str(ws.recv(timeout=10))
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the server did not stop within 20 s of SIGTERM")
        elapsed = time.monotonic() - started
    log = server.log.read_text()
    assert "timeout graceful shutdown exceeded" not in log, log[-1500:]
    assert elapsed < 5, f"SIGTERM → exit took {elapsed:.1f}s with one WebSocket open"
