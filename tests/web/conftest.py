"""Fixtures for the browser tests: the REAL server (``perpdesk serve``) in a subprocess,
driven by Debian's Chromium through Playwright's sync API.

Helpers and constants live in ``browser_support`` (test modules import it first: it skips
the module when ``/usr/bin/chromium`` or the ``playwright`` package is missing). This file
imports it lazily, inside the fixtures, so a machine without a browser skips, not errors.

* ``template_db`` (session) — a SQLite database made with the CLI, as an operator would:
  users ``op`` (operator), ``viewer`` (viewer) and ``trader`` (trader, client ``demo``),
  plus an operator API key (``template_db.api_key``). Each server gets a copy of it.
* ``server`` (module) — one running server per test module, on its own copy of the
  database and its own free port, synthetic feed on. ``server.stop()`` sends SIGTERM,
  ``server.start()`` runs it again on the same database and port.
* ``make_server`` — start an extra server (e.g. the restart test's own).
* ``browser`` (session) — one headless Chromium.
* ``page`` — a fresh browser context and page (1366x768); after the test a screenshot of
  the page goes to ``artifacts/web/<test-name>.png`` (also when the test failed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from browser_support import Server, TemplateDb
    from playwright.sync_api import Browser, Page


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> TemplateDb:
    from browser_support import USERS, TemplateDb, perpdesk

    path = tmp_path_factory.mktemp("web-template") / "web.db"
    url = f"sqlite:///{path}"
    for name, (role, client, password) in USERS.items():
        args = ["users", "add", name, "--role", role, "--password", password]
        if client:
            args += ["--client", client]
        perpdesk(*args, database_url=url)
    out = perpdesk("keys", "create", "--role", "operator", "--name", "web-tests",
                   database_url=url)
    match = re.search(r"^(\S+)$", out.strip(), re.MULTILINE)
    assert match, f"no key printed by perpdesk keys create: {out!r}"
    return TemplateDb(path, match.group(1))


@pytest.fixture
def make_server(template_db: TemplateDb, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[Callable[[], Server]]:
    from browser_support import Server

    servers: list[Server] = []

    def make() -> Server:
        db = template_db.copy_to(tmp_path_factory.mktemp("web-server"))
        server = Server(db, template_db.api_key)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture(scope="module")
def server(template_db: TemplateDb, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    from browser_support import Server

    db = template_db.copy_to(tmp_path_factory.mktemp("web-server"))
    srv = Server(db, template_db.api_key)
    srv.start()
    yield srv
    srv.close()


# ---- the browser ----------------------------------------------------------------------------

# One browser per test module, stopped when the module is done: Playwright's sync
# driver keeps an event loop running in this thread while it is alive, and a test
# elsewhere that calls asyncio.run() after it would fail. (A "package" scope acts as
# "session" here: tests/ has no __init__.py files.)
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from browser_support import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    from browser_support import UI_TIMEOUT_MS, screenshot_path

    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.set_default_timeout(UI_TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.js_errors = errors  # type: ignore[attr-defined]
    yield pg
    try:
        if not pg.is_closed():
            pg.screenshot(path=str(screenshot_path(request.node.name)), full_page=True)
    finally:
        context.close()


