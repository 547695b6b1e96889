"""Helpers for the browser tests: the server subprocess, logging in, waiting for pushes.

Importing this module skips the importing test module when Debian's ``/usr/bin/chromium``
or the ``playwright`` Python package is missing (no browser is ever downloaded).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# CI sets PERPDESK_REQUIRE_BROWSER=1: there a missing browser fails instead of skipping.
_REQUIRED = os.environ.get("PERPDESK_REQUIRE_BROWSER") == "1"


def _unavailable(reason: str) -> None:
    if _REQUIRED:
        pytest.fail(f"{reason} (PERPDESK_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


if not os.access(CHROMIUM, os.X_OK):
    _unavailable(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it")
try:
    from playwright.sync_api import Page
except ImportError:
    _unavailable("the playwright Python package is not installed (pip install playwright)")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "web"
DOCS = ROOT / "docs" / "screenshots"
# PERPDESK_UPDATE_SCREENSHOTS=1 regenerates the README screenshots in docs/screenshots/;
# otherwise those tests write them to artifacts/web/docs-<name>.png (the tree stays clean).
UPDATE_DOCS = os.environ.get("PERPDESK_UPDATE_SCREENSHOTS") == "1"
MAX_DOC_PNG_BYTES = 400 * 1024
SESSION_SECRET = "perpdesk-web-tests-fixed-session-secret-0123456789"

# user -> (role, client scope, password)
USERS = {
    "op": ("operator", None, "op-password-123"),
    "viewer": ("viewer", None, "viewer-password-123"),
    "trader": ("trader", "demo", "trader-password-123"),
}

# Waits: generous (a 2-core machine shared with other suites) but always bounded.
READY_TIMEOUT_S = 30.0
UI_TIMEOUT_MS = 10_000


# ---- the server ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def perpdesk_command() -> list[str]:
    """The installed ``perpdesk`` entry point (next to this Python first), else its module."""
    beside = Path(sys.executable).with_name("perpdesk")
    found = str(beside) if beside.exists() else shutil.which("perpdesk")
    return [found] if found else [sys.executable, "-m", "app.cli"]


def perpdesk(*args: str, database_url: str) -> str:
    """Run the perpdesk CLI and return its stdout."""
    out = subprocess.run([*perpdesk_command(), *args, "--database-url", database_url],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert out.returncode == 0, f"perpdesk {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


class TemplateDb:
    def __init__(self, path: Path, api_key: str):
        self.path = path
        self.api_key = api_key

    def copy_to(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "web.db"
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                shutil.copyfile(src, Path(str(target) + suffix))
        return target


class Server:
    """``perpdesk serve`` as a subprocess on a fixed port and database."""

    def __init__(self, db_path: Path, api_key: str, port: int | None = None,
                 extra_env: dict[str, str] | None = None):
        self.db_path = db_path
        self.extra_env = extra_env or {}  # more PERPDESK_* settings for this server
        self.database_url = f"sqlite:///{db_path}"
        self.api_key = api_key
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = db_path.parent / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERPDESK_")}
        env.update({
            "PERPDESK_DATABASE_URL": self.database_url,
            "PERPDESK_DEMO_CREDENTIALS": "0",
            "PERPDESK_SESSION_SECRET": SESSION_SECRET,
            "PERPDESK_FEED": "synthetic",
            # The demo without the default risk profile's breakers and caps: the tests
            # of a module share a server, and their round trips must not trip one.
            "PERPDESK_CONFIG": str(ROOT / "tests" / "no_risk_controls.yaml"),
        })
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*perpdesk_command(), "serve", "--port", str(self.port),
             "--log-level", "info"],
            env=self.env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.kill()
        raise AssertionError(f"server not ready within {READY_TIMEOUT_S}s:\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait for the process to end; returns its exit code (uvicorn re-raises
        the signal after a graceful shutdown, so a clean stop ends with -SIGTERM)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"server ignored SIGTERM for {timeout}s:\n{self.log()}") from None
        return int(self.proc.returncode)

    def close(self) -> None:
        """Stop the server however it goes: SIGTERM first, SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.stop(timeout=15)
        except AssertionError:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self, since: int = 0, tail: int = 4000) -> str:
        """The server's output (from byte ``since``), its last ``tail`` characters."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")[-tail:]
        except OSError:
            return "(no log)"

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def api(self, method: str, path: str, body: dict[str, Any] | None = None
            ) -> tuple[int, Any]:
        """A REST call with the operator API key; returns (status, decoded JSON)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.base_url}/api/v1{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {self.api_key}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")



def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"


def doc_screenshot_path(name: str) -> Path:
    """Where a README screenshot goes (see UPDATE_DOCS)."""
    if UPDATE_DOCS:
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS / f"{name}.png"
    return screenshot_path(f"docs-{name}")


def login(page: Page, server: Server, user: str, target: str = "/") -> None:
    """Log in through the form and land on ``target``."""
    password = USERS[user][2]
    page.goto(f"{server.base_url}/login?next={target}")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url.startswith(f"{server.base_url}{target}"), page.url


def new_tab(page: Page) -> Page:
    """A second page in ``page``'s context (same login), recording its JS errors in
    ``js_errors`` like the ``page`` fixture does."""
    tab = page.context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.js_errors = errors  # type: ignore[attr-defined]
    return tab


def wait_live(page: Page, timeout_ms: int = UI_TIMEOUT_MS) -> None:
    """Wait until the page's WebSocket is open (#live.on)."""
    page.wait_for_selector("#live.on", timeout=timeout_ms)


def marks_snapshot(page: Page) -> list[str]:
    """The text of every row of the mark prices table."""
    return page.eval_on_selector_all("#marks tbody tr", "rows => rows.map(r => r.innerText)")


def wait_marks_change(page: Page, timeout_s: float = 10.0) -> tuple[list[str], list[str]]:
    """Wait (bounded) until the pushed marks table differs from now; returns (before, after)."""
    before = marks_snapshot(page)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)
        after = marks_snapshot(page)
        if after != before:
            return before, after
    raise AssertionError(f"marks did not change within {timeout_s}s: {before}")


def confirm_control(page: Page, scope: str, action: str, reason: str) -> None:
    """Press a kill-switch button on /controls, give the reason, confirm, wait for the result."""
    page.click(f'tr[data-scope="{scope}"] button[data-action="{action}"]')
    page.wait_for_selector("dialog#confirm[open]")
    page.fill("#confirm-reason", reason)
    with page.expect_response(lambda r: f"/ui/controls/{action}" in r.url):
        page.click("#confirm-go")
    page.wait_for_selector("#control-result #control-result-body")


def fill_ticket(page: Page, *, client: str = "demo", venue: str = "paper-binance",
                symbol: str = "BTC-PERP", side: str = "buy", type: str = "limit",
                tif: str = "gtc", qty: str = "0.001", price: str = "",
                client_order_id: str = "") -> None:
    """Fill the /orders ticket (#ticket)."""
    ticket = page.locator("#ticket")
    ticket.locator("select[name=client]").select_option(client)
    ticket.locator("select[name=venue]").select_option(venue)
    ticket.locator("select[name=symbol]").select_option(symbol)
    ticket.locator("select[name=side]").select_option(side)
    ticket.locator("select[name=type]").select_option(type)
    ticket.locator("select[name=time_in_force]").select_option(tif)
    ticket.locator("input[name=qty]").fill(qty)
    ticket.locator("input[name=price]").fill(price)
    ticket.locator("input[name=client_order_id]").fill(client_order_id)


def submit_ticket(page: Page) -> None:
    """Press "Place order" and wait for the ticket's response."""
    with page.expect_response(lambda r: r.url.endswith("/ui/orders")
                              and r.request.method == "POST"):
        page.locator("#ticket button[type=submit]").click()


def trading_state(server: Server, scope: str = "global") -> str:
    """A scope's trading state from GET /api/v1/controls ("active" when not listed)."""
    status, body = server.api("GET", "/controls")
    assert status == 200, body
    return next((s["state"] for s in body if s["scope"] == scope), "active")
