"""``perpdesk serve``, ``perpdesk users ...`` and ``perpdesk keys ...``.

User and key changes are audited (``audit_log``, scope ``auth``) with the actor
``cli:<os user>``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from app.auth.principal import Role
from app.auth.store import AuthStore
from app.config import Settings
from app.services import admin
from app.services.errors import ServiceError
from app.store.event_log import make_db_engine
from app.store.migrate import upgrade

ROLES = [r.value for r in Role]


def _auth(args: argparse.Namespace) -> AuthStore:
    url = args.database_url or Settings().database_url
    upgrade(url)  # users and keys may be created before the server's first start
    return AuthStore(make_db_engine(url))


def _actor() -> str:
    """Who runs the command, for the audit log (the OS account; no better id here)."""
    try:
        who = getpass.getuser()
    except Exception:  # no login name in the environment or the password database
        who = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"cli:{who}"


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.config import load_trading_config
    from app.runtime.replay import open_replay, parse_speed

    if args.config:
        os.environ["PERPDESK_CONFIG"] = args.config
    if args.database_url:
        os.environ["PERPDESK_DATABASE_URL"] = args.database_url
    if args.demo_speed is not None:
        os.environ["PERPDESK_DEMO_SPEED"] = str(args.demo_speed)
    if args.replay is not None and args.demo_speed is not None:
        print("perpdesk serve: --replay and --demo-speed do not go together (a replay runs "
              "at --speed on its own clock)", file=sys.stderr)
        return 2
    if args.replay is not None:
        speed = "60" if args.speed is None else args.speed
        try:
            parse_speed(speed)
        except ValueError as exc:
            print(f"perpdesk serve: {exc}", file=sys.stderr)
            return 2
        os.environ["PERPDESK_REPLAY"] = str(Path(args.replay).expanduser().resolve())
        os.environ["PERPDESK_REPLAY_SPEED"] = speed
        for flag, name in (("replay_symbol", "SYMBOL"), ("replay_venue", "VENUE"),
                           ("replay_interval", "INTERVAL")):
            if getattr(args, flag) is not None:
                os.environ[f"PERPDESK_REPLAY_{name}"] = getattr(args, flag)
        for flag, name in (("replay_funding", "FUNDING"), ("replay_signals", "SIGNALS")):
            if getattr(args, flag) is not None:
                os.environ[f"PERPDESK_REPLAY_{name}"] = str(
                    Path(getattr(args, flag)).expanduser().resolve())
        try:  # what is wrong with the replay, said before the server starts
            settings = Settings()
            trading = load_trading_config(settings.config)
            open_replay(settings, [i.to_domain() for i in trading.instruments],
                        [v.name for v in trading.venues], [c.name for c in trading.clients])
        except (OSError, ValueError) as exc:
            print(f"perpdesk serve: {exc}", file=sys.stderr)
            return 2
    elif any(getattr(args, f) is not None for f in (
            "speed", "replay_symbol", "replay_venue", "replay_funding", "replay_interval",
            "replay_signals")):
        print("perpdesk serve: --speed, --replay-symbol, --replay-venue, --replay-funding, "
              "--replay-interval and --replay-signals need --replay FILE", file=sys.stderr)
        return 2
    uvicorn.run("app.server:create_app", factory=True, host=args.host, port=args.port,
                log_level=args.log_level, access_log=args.access_log,
                timeout_graceful_shutdown=10,
                # Dashboards on loopback or a LAN: compressing every pushed fragment for
                # every socket cost more CPU (and latency) than the bandwidth it saved.
                ws_per_message_deflate=False)
    return 0


def users_add(args: argparse.Namespace) -> int:
    password = args.password
    if password is None:
        password = getpass.getpass(f"password for {args.name}: ")
        if password != getpass.getpass("again: "):
            print("passwords differ", file=sys.stderr)
            return 2
    try:
        admin.add_user(_auth(args), _actor(), args.name, Role(args.role), password,
                       args.client or "")
    except ServiceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(f"user {args.name} added ({args.role}{', client ' + args.client if args.client else ''})")
    return 0


def users_remove(args: argparse.Namespace) -> int:
    try:
        admin.remove_user(_auth(args), _actor(), args.name)
    except ServiceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"user {args.name} removed (their browser sessions are ended)")
    return 0


def keys_create(args: argparse.Namespace) -> int:
    key = admin.create_key(_auth(args), _actor(), Role(args.role),
                           args.name or f"{args.role}-key", args.client or "")
    print(key)
    print("(store it now: it is shown only once)", file=sys.stderr)
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    try:
        count = admin.revoke_key(_auth(args), _actor(), args.key)
    except ServiceError:
        count = 0
    print(f"revoked {count} key(s)")
    return 0 if count else 1


def keys_list(args: argparse.Namespace) -> int:
    for row in admin.list_keys(_auth(args)):
        state = "revoked" if row.revoked_at else "active"
        print(f"{row.prefix}  {row.name:20} {row.role:9} {row.clients or '*':15} {state}")
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--database-url", help="default: PERPDESK_DATABASE_URL or ./perpdesk.db")

    p = commands.add_parser("serve", parents=[db], help="run the server (API, WebSocket)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--config", help="YAML configuration (default: PERPDESK_CONFIG or built-in)")
    p.add_argument("--log-level", default="info")
    p.add_argument("--demo-speed", type=float, default=None, metavar="N",
                   help="demo: the synthetic market and the engine's clock run N times real "
                        "time, and the funding-rate arbitrage starts (e.g. 60)")
    p.add_argument("--replay", metavar="FILE",
                   help="simulation: replay this OHLCV bar file (CSV or Parquet, any interval) "
                        "through the paper venue in place of the synthetic feed, on the "
                        "data's clock")
    p.add_argument("--speed", default=None, metavar="N",
                   help="with --replay: N times real time (60: a minute of data a second), "
                        "or 'max' (or 0): as fast as the engine takes it (default 60)")
    p.add_argument("--replay-symbol", metavar="SYMBOL",
                   help="with --replay: the file's symbol (default BTC-PERP)")
    p.add_argument("--replay-venue", metavar="VENUE",
                   help="with --replay: the venue it trades on (default: the first configured)")
    p.add_argument("--replay-funding", metavar="FILE",
                   help="with --replay: a funding-rate file (CSV or Parquet) merged into it")
    p.add_argument("--replay-interval", metavar="INTERVAL",
                   help="with --replay: the bar interval (e.g. 5m; default: detected)")
    p.add_argument("--replay-signals", metavar="FILE",
                   help="with --replay: recorded signals (time, signal 1/0/-1, optional "
                        "client, strategy, strength, signal_id), each submitted at its time "
                        "as POST /api/v1/signals would (for the first configured client "
                        "unless a row names one)")
    # Off by default: a line per request at thousands of orders a second is noise next
    # to the audit log, the event log and /metrics, and it costs the order path CPU.
    p.add_argument("--access-log", action="store_true",
                   help="log every HTTP request (uvicorn's access log)")
    p.set_defaults(run=serve)

    users = commands.add_parser("users", help="manage users").add_subparsers(
        dest="action", required=True)
    p = users.add_parser("add", parents=[db], help="add a user")
    p.add_argument("name")
    p.add_argument("--role", choices=ROLES, required=True)
    p.add_argument("--client", help="limit the user to these clients (comma-separated)")
    p.add_argument("--password", help="prompted for when omitted")
    p.set_defaults(run=users_add)
    p = users.add_parser("remove", parents=[db], help="remove a user (ends their sessions)")
    p.add_argument("name")
    p.set_defaults(run=users_remove)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="action", required=True)
    p = keys.add_parser("create", parents=[db], help="create a key (printed once)")
    p.add_argument("--role", choices=ROLES, required=True)
    p.add_argument("--client", help="limit the key to these clients (comma-separated)")
    p.add_argument("--name")
    p.set_defaults(run=keys_create)
    p = keys.add_parser("revoke", parents=[db], help="revoke by key prefix or name")
    p.add_argument("key")
    p.set_defaults(run=keys_revoke)
    p = keys.add_parser("list", parents=[db], help="list keys (never the secrets)")
    p.set_defaults(run=keys_list)
