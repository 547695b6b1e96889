"""Users and API keys in the database; secrets are only ever stored hashed.

Passwords use argon2 (slow on purpose). API keys are 32 random bytes, so a
fast SHA-256 is enough to store them safely, and verification stays cheap
on the order path; a short in-memory cache spares the database on every call,
which bounds how long a revoked key keeps working (``CACHE_SECONDS``).
Browser sessions are rows too (the signed cookie carries a random id), so a
logout ends the session everywhere, not only in the browser that logged out.

Adding and removing users and creating and revoking keys write an audit entry
(``app.auth.audit``) in the same transaction as the change; ``actor`` names who
did it (``cli:<os user>`` from ``perpdesk``, ``system`` otherwise). Logins are
audited by the login guard, which also throttles them (``app.auth.login_guard``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlmodel import Session, col, select

from app.auth.audit import auth_row
from app.auth.principal import Principal, Role, parse_clients
from app.store.tables import ApiKeyRow, SessionRow, UserRow

CACHE_SECONDS = 5.0
KEY_PREFIX = "pdk_"
_hasher = PasswordHasher()


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password with the current parameters: checking a password
    for an unknown user against it costs what a real check costs, so response times
    do not tell which user names exist. Made on first use (a hash takes ~0.15 s)."""
    return _hasher.hash(secrets.token_urlsafe(16))


def _scope_text(clients: str) -> str:
    return f"clients {clients}" if clients else "all clients"


class AuthError(Exception):
    pass


class AuthStore:
    def __init__(self, db: sa.Engine):
        self.db = db
        self._key_cache: dict[str, tuple[float, Principal | None]] = {}
        self._session_cache: dict[str, tuple[float, bool]] = {}

    # ---- users ------------------------------------------------------------------

    def add_user(self, name: str, role: Role, password: str, clients: str = "",
                 actor: str = "system") -> None:
        """Add a user (audited as ``user-add`` by ``actor``)."""
        if len(password) < 8:
            raise AuthError("passwords need at least 8 characters")
        password_hash = _hasher.hash(password)  # before the transaction: it is slow
        with Session(self.db) as session:
            if session.exec(select(UserRow).where(UserRow.name == name)).first():
                raise AuthError(f"user {name!r} already exists")
            session.add(UserRow(name=name, role=role.value, clients=clients,
                                password_hash=password_hash,
                                created_at=datetime.now(UTC)))
            session.add(auth_row(actor, "user-add",
                                 f"user {name} ({role.value}, {_scope_text(clients)})",
                                 {"user": name, "role": role.value, "clients": clients}))
            session.commit()

    def remove_user(self, name: str, actor: str = "system") -> bool:
        """Remove a user and end their open browser sessions (audited as
        ``user-remove``); False if there is no such user."""
        now = datetime.now(UTC)
        with Session(self.db) as session:
            user = session.exec(select(UserRow).where(UserRow.name == name)).first()
            if user is None:
                return False
            sessions = session.exec(select(SessionRow).where(
                SessionRow.user_name == name,
                col(SessionRow.revoked_at).is_(None))).all()
            for row in sessions:
                row.revoked_at = now
                session.add(row)
            session.delete(user)
            session.add(auth_row(actor, "user-remove",
                                 f"user {name} ({user.role}); {len(sessions)} open "
                                 "session(s) ended",
                                 {"user": name, "role": user.role, "clients": user.clients,
                                  "sessions_ended": len(sessions)}))
            session.commit()
        self._session_cache.clear()
        return True

    def login(self, name: str, password: str) -> Principal | None:
        """Check a password (blocking and slow on purpose: argon2). Throttling and the
        audit are the login guard's; call this through it."""
        with Session(self.db) as session:
            user = session.exec(select(UserRow).where(UserRow.name == name)).first()
        try:
            # An unknown user costs the same check as a known one: no user-enumeration
            # timing.
            _hasher.verify(user.password_hash if user else _dummy_hash(), password)
        except (VerifyMismatchError, InvalidHashError):
            return None
        if user is None:
            return None
        return Principal(user.name, Role(user.role), parse_clients(user.clients), "session")

    def user(self, name: str) -> Principal | None:
        with Session(self.db) as session:
            user = session.exec(select(UserRow).where(UserRow.name == name)).first()
        if user is None:
            return None
        return Principal(user.name, Role(user.role), parse_clients(user.clients), "session")

    def has_users(self) -> bool:
        with Session(self.db) as session:
            return session.exec(select(UserRow.id).limit(1)).first() is not None

    # ---- browser sessions ------------------------------------------------------------

    def open_session(self, user: str) -> str:
        """A new session id for ``user``'s cookie (only its hash is stored)."""
        session_id = secrets.token_urlsafe(32)
        with Session(self.db) as session:
            session.add(SessionRow(id_hash=_key_hash(session_id), user_name=user,
                                   created_at=datetime.now(UTC)))
            session.commit()
        return session_id

    def session_open(self, session_id: str) -> bool:
        """Is the session still open (not logged out)? Cached like keys."""
        now = time.monotonic()
        cached = self._session_cache.get(session_id)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        with Session(self.db) as session:
            row = session.get(SessionRow, _key_hash(session_id))
        is_open = row is not None and row.revoked_at is None
        if len(self._session_cache) > 10_000:
            self._session_cache.clear()
        self._session_cache[session_id] = (now, is_open)
        return is_open

    def close_session(self, session_id: str) -> None:
        with Session(self.db) as session:
            row = session.get(SessionRow, _key_hash(session_id))
            if row is not None and row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
                session.add(row)
                session.commit()
        self._session_cache.pop(session_id, None)

    # ---- API keys -----------------------------------------------------------------

    def create_key(self, role: Role, name: str, clients: str = "",
                   actor: str = "system") -> str:
        """Create a key and return it; this is the only time it is visible. Audited as
        ``key-create`` (with its prefix, never the key)."""
        prefix = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        with Session(self.db) as session:
            session.add(ApiKeyRow(name=name, prefix=prefix, key_hash=_key_hash(key),
                                  role=role.value, clients=clients,
                                  created_at=datetime.now(UTC)))
            session.add(auth_row(actor, "key-create",
                                 f"API key {name} ({prefix}, {role.value}, "
                                 f"{_scope_text(clients)})",
                                 {"name": name, "prefix": prefix, "role": role.value,
                                  "clients": clients}))
            session.commit()
        return key

    def revoke_key(self, prefix_or_name: str, actor: str = "system") -> int:
        """Revoke the active keys with this prefix or name; how many. Audited as
        ``key-revoke`` when it revoked any."""
        with Session(self.db) as session:
            rows = session.exec(select(ApiKeyRow).where(
                sa.or_(col(ApiKeyRow.prefix) == prefix_or_name,
                       col(ApiKeyRow.name) == prefix_or_name),
                col(ApiKeyRow.revoked_at).is_(None))).all()
            for row in rows:
                row.revoked_at = datetime.now(UTC)
                session.add(row)
            if rows:
                keys = [{"name": r.name, "prefix": r.prefix, "role": r.role} for r in rows]
                session.add(auth_row(actor, "key-revoke",
                                     "API key(s) " + ", ".join(f"{r.name} ({r.prefix})"
                                                               for r in rows),
                                     {"match": prefix_or_name, "keys": keys}))
            session.commit()
        self._key_cache.clear()
        return len(rows)

    def list_keys(self) -> list[ApiKeyRow]:
        with Session(self.db) as session:
            return list(session.exec(select(ApiKeyRow).order_by(col(ApiKeyRow.id))))

    def authenticate_key(self, key: str) -> Principal | None:
        now = time.monotonic()
        cached = self._key_cache.get(key)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        principal = self._lookup_key(key)
        if len(self._key_cache) > 10_000:
            self._key_cache.clear()
        self._key_cache[key] = (now, principal)
        return principal

    def _lookup_key(self, key: str) -> Principal | None:
        if not key.startswith(KEY_PREFIX) or key.count("_") < 2:
            return None
        prefix = key[len(KEY_PREFIX):].split("_", 1)[0]
        with Session(self.db) as session:
            row = session.exec(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix)).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.key_hash, _key_hash(key)):
            return None
        return Principal(row.name, Role(row.role), parse_clients(row.clients), "key")
