"""Users and API keys in the database; secrets are only ever stored hashed.

Passwords use argon2 (slow on purpose). API keys are 32 random bytes, so a
fast SHA-256 is enough to store them safely, and verification stays cheap
on the order path; a short in-memory cache spares the database on every call,
which bounds how long a revoked key keeps working (``CACHE_SECONDS``).
Browser sessions are rows too (the signed cookie carries a random id), so a
logout ends the session everywhere, not only in the browser that logged out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlmodel import Session, select

from app.auth.principal import Principal, Role, parse_clients
from app.store.tables import ApiKeyRow, SessionRow, UserRow

CACHE_SECONDS = 5.0
KEY_PREFIX = "pdk_"
_hasher = PasswordHasher()


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class AuthError(Exception):
    pass


class AuthStore:
    def __init__(self, db: sa.Engine):
        self.db = db
        self._key_cache: dict[str, tuple[float, Principal | None]] = {}
        self._session_cache: dict[str, tuple[float, bool]] = {}

    # ---- users ------------------------------------------------------------------

    def add_user(self, name: str, role: Role, password: str, clients: str = "") -> None:
        if len(password) < 8:
            raise AuthError("passwords need at least 8 characters")
        with Session(self.db) as session:
            if session.exec(select(UserRow).where(UserRow.name == name)).first():
                raise AuthError(f"user {name!r} already exists")
            session.add(UserRow(name=name, role=role.value, clients=clients,
                                password_hash=_hasher.hash(password),
                                created_at=datetime.now(UTC)))
            session.commit()

    def login(self, name: str, password: str) -> Principal | None:
        with Session(self.db) as session:
            user = session.exec(select(UserRow).where(UserRow.name == name)).first()
        if user is None:
            _hasher.hash(password)  # same cost as a real check: no user-enumeration timing
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except (VerifyMismatchError, InvalidHashError):
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

    def create_key(self, role: Role, name: str, clients: str = "") -> str:
        """Create a key and return it; this is the only time it is visible."""
        prefix = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        with Session(self.db) as session:
            session.add(ApiKeyRow(name=name, prefix=prefix, key_hash=_key_hash(key),
                                  role=role.value, clients=clients,
                                  created_at=datetime.now(UTC)))
            session.commit()
        return key

    def revoke_key(self, prefix_or_name: str) -> int:
        with Session(self.db) as session:
            rows = session.exec(select(ApiKeyRow).where(
                sa.or_(ApiKeyRow.prefix == prefix_or_name, ApiKeyRow.name == prefix_or_name),
                ApiKeyRow.revoked_at.is_(None))).all()  # type: ignore[union-attr]
            for row in rows:
                row.revoked_at = datetime.now(UTC)
                session.add(row)
            session.commit()
        self._key_cache.clear()
        return len(rows)

    def list_keys(self) -> list[ApiKeyRow]:
        with Session(self.db) as session:
            return list(session.exec(select(ApiKeyRow).order_by(ApiKeyRow.id)))

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
