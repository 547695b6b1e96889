"""``perpdesk serve``, ``perpdesk users ...`` and ``perpdesk keys ...``.

User and key changes are audited (``audit_log``, scope ``auth``) with the actor
``cli:<os user>``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

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

    if args.config:
        os.environ["PERPDESK_CONFIG"] = args.config
    if args.database_url:
        os.environ["PERPDESK_DATABASE_URL"] = args.database_url
    if args.demo_speed is not None:
        os.environ["PERPDESK_DEMO_SPEED"] = str(args.demo_speed)
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
