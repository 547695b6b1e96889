"""The FastAPI application: builds the trading system in its lifespan.

``create_app()`` reads settings from the environment (``PERPDESK_*``) unless
given; the lifespan migrates, recovers, starts the bus and feeds, and on
shutdown (SIGTERM included) stops feeds, drains the bus and commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from app.api import (
    alerts,
    analytics,
    arbitrage,
    backtests,
    controls,
    docs,
    errors,
    health,
    leverage,
    openapi,
    orders,
    portfolio,
    risk,
    session,
    signals,
    strategies,
    ws,
)
from app.api.body_limit import BodyLimit
from app.api.deps import RateLimiter
from app.api.metrics import Metrics
from app.api.order_lane import OrderLane
from app.api.positions import router as positions_router
from app.api.security_headers import SecurityHeaders
from app.auth.principal import Role
from app.auth.store import AuthStore
from app.config import Settings, load_trading_config
from app.domain.events import OrderAccepted, OrderFilled, OrderRejected
from app.runtime.gc_tuning import tuned_gc
from app.runtime.system import TradingSystem
from app.services.backtests import BacktestService
from app.web import backtests as web_backtests
from app.web import exports
from app.web import routes as web
from app.web.live import LiveHub
from app.web.views import EquityHistory

log = logging.getLogger("perpdesk")
DEMO_USER = "demo-operator"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        system = TradingSystem(settings, load_trading_config(settings.config))
        system.bus.observer = app.state.metrics.observe
        system.bus.post_commit.on("metrics", app.state.metrics.observe_records,
                                  OrderFilled, OrderAccepted, OrderRejected)
        app.state.system = system
        system.equity = EquityHistory()
        system.housekeepers.append(lambda: system.equity.sample(system))
        await system.start()
        # Backtests run in worker processes; their progress is pushed like events.
        system.backtests = BacktestService(settings, system.broadcaster, system.db)
        await system.backtests.start()
        app.state.live = LiveHub(
            system,
            render=lambda name, who, params: web.render_fragment(system, name, who, params),
            render_row=lambda oid, who, table, params: web.render_order_row(
                system, oid, who, table, params),
            list_rows=lambda who, table, params: web.list_order_rows(system, who, table,
                                                                     params))
        app.state.live.start()
        app.state.auth = AuthStore(system.db)
        if settings.demo_credentials and system.first_start:
            _print_demo_credentials(app.state.auth)
        try:
            # After recovery: the rebuilt state is frozen too.
            with tuned_gc(settings.gc_sweep_hours):
                yield
        finally:
            await app.state.live.stop()
            with contextlib.suppress(Exception):  # never a reason not to stop the rest
                await system.backtests.stop()
            guard = getattr(app.state, "login_guard", None)
            if guard is not None:  # failed-login counts still buffered go to the audit log
                with contextlib.suppress(Exception):  # never a reason not to stop
                    await asyncio.wait_for(guard.audit.flush(), 5)
                guard.close()
            await system.stop()

    app = FastAPI(
        title="perpdesk", version="1.0",
        description="Order and position management for crypto spot and perpetual futures. "
                    "Decimals are JSON strings. Authenticate with `Authorization: Bearer "
                    "<api key>`.",
        lifespan=lifespan,
        # /docs and /redoc from vendored assets (app/api/docs.py), not FastAPI's CDN pages.
        docs_url=None, redoc_url=None,
        # FastAPI's built-in OpenTelemetry hooks look up the global providers on every
        # request; perpdesk reports through /metrics, so they stay off.
        telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.ws_clients = 0  # open /ws connections (dashboards are counted by the hub)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    app.add_middleware(SessionMiddleware,
                       secret_key=settings.session_secret or secrets.token_urlsafe(32),
                       session_cookie="perpdesk_session", same_site="strict",
                       https_only=settings.secure_cookies, max_age=12 * 3600)
    # API-key order placement skips the session and the routing layers...
    app.add_middleware(OrderLane)
    # ...but not the cap on request bodies (outermost).
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # around everything, the 413s included
    errors.install(app)
    # Included straight on the app (not through a parent router): one routing layer
    # less on every request.
    for module in (orders, portfolio, controls, session, leverage, strategies, risk,
                   alerts, arbitrage, signals, analytics, backtests):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(positions_router, prefix="/api/v1")
    app.include_router(health.router)
    app.include_router(ws.router)
    app.include_router(web.router)
    app.include_router(web_backtests.router)
    app.include_router(exports.router)
    app.include_router(docs.router)
    app.mount("/static", StaticFiles(directory=web.HERE / "static"), name="static")
    openapi.install(app)
    return app


def _print_demo_credentials(auth: AuthStore) -> None:
    """First start of a fresh database: one operator key and one login, shown once.

    The secrets never go through ``logging`` (log files and journals keep them). On a
    terminal (stderr is a TTY) they are printed there; otherwise (systemd, docker
    without a tty, output redirected) they are written to
    ``perpdesk-demo-credentials.txt``, mode 0600, next to the SQLite database (in the
    working directory for other databases), and one log line says where.
    """
    import os  # here, not at the top: only a first start needs them
    import sys
    from pathlib import Path

    actor = "system:first-start"
    key = auth.create_key(Role.OPERATOR, name="demo-operator", actor=actor)
    login = ""
    if not auth.has_users():
        password = secrets.token_urlsafe(12)
        auth.add_user(DEMO_USER, Role.OPERATOR, password, actor=actor)
        login = f"  Login:               {DEMO_USER} / {password}\n"
    banner = (
        "\n" + "=" * 72 + "\n"
        "  perpdesk: first start — demo credentials (shown once, store them now)\n"
        f"  API key (operator):  {key}\n"
        + login
        + "=" * 72 + "\n")
    if sys.stderr.isatty():
        print(banner, file=sys.stderr, flush=True)
        return
    url = auth.db.url
    folder = Path.cwd()
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        folder = Path(url.database).resolve().parent
    path = folder / "perpdesk-demo-credentials.txt"
    try:
        # O_NOFOLLOW: a symlink planted at that name must not redirect the secrets.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)  # an existing file keeps its mode through O_TRUNC
            f.write(banner.strip("\n") + "\n")
    except OSError as exc:
        log.warning("first start: could not write the demo credentials to %s (%s); "
                    "create a key with `perpdesk keys create --role operator --name me`",
                    path, exc.strerror or exc)
        return
    log.warning("first start: demo credentials written to %s (mode 0600, shown nowhere else)",
                path)
