"""The login guard: throttling with exponential backoff, and the password-hash executor.

Both login paths (``POST /api/v1/auth/login`` and the browser form ``POST /login``)
go through one ``LoginGuard`` per app (``guard_for(app.state)``).

Why: every login attempt costs an argon2 hash (~0.15 s of CPU on purpose), so
unthrottled anonymous logins could take the cores away from the order path and
let anyone guess passwords as fast as the CPU allows.

The throttle counts failed password checks in three tables, each with a few free
failures and then an exponential backoff (``base_delay_s * 2**(failures - free)``,
capped). An attempt is refused (429 ``RATE_LIMITED`` with ``Retry-After``, no hash,
no database read) while any table that applies to it says wait:

* **per (user name, address) pair** — 5 free, then 1 s, 2 s, 4 s ... capped at
  15 min. Always applies. This is the lockout an online guesser runs into, and it
  locks only the address the guessing comes from.
* **per address** (any user name; IPv6 by /64) — 10 free, then capped at 15 min.
  Stops one address from spraying passwords over many user names.
* **per user name** (from every address) — 20 free, then a slowdown capped at
  60 s, not a lockout: it limits a distributed attack (many addresses, each within
  its own free attempts) to about one guess a minute per name.

The pair and address rules are where the choice lies. A lockout per user name alone
would let anyone lock the real operator out from anywhere by failing on purpose;
so the hard lockout is per (user, address) pair, and the per-user rule is only a
capped slowdown. And an address the user has logged in from successfully (a known
pair, remembered for 30 days, in memory) is exempt from the per-address and
per-user rules — only its own pair rule applies — so an attack on the operator's
name from elsewhere, or from others behind the same NAT, does not keep the
operator out from where they usually log in. The cost, written down: from an
address never used before, during a sustained distributed attack on their name, a
user may have to wait for a free slot (up to a minute each, shared with the
attackers); API keys are never affected, and ``perpdesk keys create`` always works.

A success resets the pair's and the user's counters (not the address's, or one
valid account would let an address spray other names). Counters are forgotten
after an hour without any attempt; refused attempts do not count as failures but
do keep an entry alive. Once past its free failures a key admits one attempt at a
time, so concurrent requests cannot slip extra guesses in before the failure lands.
All state is in memory (a restart forgets it) and bounded: each table is an LRU of
at most ``max_entries`` keys, pruned of idle ones every second.

Hashing runs on a dedicated executor of ``hash_workers`` threads (not the default
one the rest of the app uses for database calls) at the lowest CPU priority (nice
19, Linux), so the event loop and the bus win the cores when they are busy and
only logins get slower then (at nice 10 a flood's hashes still doubled the order
p99 in ``bench/login_flood.py``). At most ``hash_queue`` attempts wait for it;
beyond that an attempt is refused at once with 503 ``LOGIN_BUSY``
rather than queued without bound. One address (unless the pair is known) may have
at most ``address_in_flight`` attempts checked or waiting at a time; more are
refused (429), so one client cannot fill the queue and keep everyone else out.

Refusals (429 and 503) are decided at once, without a check or a database read,
but answered after a short delay (``refusal_delay_s``, at most the wait; at most
``max_delayed`` held at once, beyond that at once): a client that ignores
``Retry-After`` and retries in a loop then sends about one request a second per
connection instead of thousands, each of which would cost the event loop.

The address is the client as uvicorn reports it: the TCP peer, or the
``X-Forwarded-For`` of a peer uvicorn trusts (``FORWARDED_ALLOW_IPS``, by default
127.0.0.1 only). Behind a reverse proxy, set ``FORWARDED_ALLOW_IPS`` to the proxy's
address, or every client counts as the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from app.auth.audit import FailedLoginAudit, login_row, write_rows
from app.auth.principal import Principal
from app.auth.store import AuthStore


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """The numbers of the login guard (see the module docstring)."""

    pair_free: int = 5
    address_free: int = 10
    user_free: int = 20
    base_delay_s: float = 1.0
    pair_cap_s: float = 900.0
    address_cap_s: float = 900.0
    user_cap_s: float = 60.0
    forget_after_s: float = 3600.0  # an entry with no attempt for this long is dropped
    max_entries: int = 10_000  # per table (and for the known pairs)
    known_for_s: float = 30 * 86400.0
    one_at_a_time_s: float = 1.0  # the wait while a key's single attempt is in flight
    address_in_flight: int = 2  # checks one address may have running or queued at once
    hash_workers: int = 1
    hash_queue: int = 4
    refusal_delay_s: float = 1.0
    max_delayed: int = 256
    hash_nice: int = 19  # added to the check threads' nice value (19 is the lowest)


class LoginRefused(Exception):
    """An attempt refused before any password check (``status`` 429 or 503)."""

    def __init__(self, status: int, code: str, message: str, retry_after: float):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """Whole seconds for ``Retry-After`` (rounded up, at least 1)."""
        return str(max(1, math.ceil(self.retry_after)))


def address_key(host: str | None) -> str:
    """The throttling key of a client address: IPv4 as is, IPv6 by its /64 (one
    subscriber usually holds a whole /64), anything else as given."""
    if not host:
        return "?"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


# ---- backoff tables -------------------------------------------------------------------------

@dataclass(slots=True)
class _Entry:
    failures: int = 0
    blocked_until: float = 0.0
    touched_at: float = 0.0
    in_flight: int = 0


class BackoffTable:
    """Failure counters with exponential backoff, an LRU of at most ``max_entries``
    keys (entries with an attempt in flight are never evicted)."""

    def __init__(self, free: int, base_s: float, cap_s: float, forget_after_s: float,
                 max_entries: int, one_at_a_time_s: float):
        self.free, self.base_s, self.cap_s = free, base_s, cap_s
        self.forget_after_s, self.max_entries = forget_after_s, max_entries
        self.one_at_a_time_s = one_at_a_time_s
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def failures(self, key: Hashable) -> int:
        """Failures counted for ``key`` (0 if none or forgotten)."""
        entry = self._entries.get(key)
        return entry.failures if entry else 0

    def in_flight(self, key: Hashable) -> int:
        """Attempts for ``key`` being checked now."""
        entry = self._entries.get(key)
        return entry.in_flight if entry else 0

    def wait(self, key: Hashable, now: float) -> float:
        """Seconds before ``key`` may try again (0: now)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        if entry.in_flight == 0 and now - entry.touched_at >= self.forget_after_s:
            del self._entries[key]
            return 0.0
        entry.touched_at = now  # a refused attempt keeps the entry (and its block) alive
        self._entries.move_to_end(key)
        if entry.blocked_until > now:
            return entry.blocked_until - now
        if entry.in_flight and entry.failures + entry.in_flight >= self.free:
            return self.one_at_a_time_s
        return 0.0

    def begin(self, key: Hashable, now: float) -> None:
        """An attempt for ``key`` goes to the password check."""
        entry = self._entries.get(key)
        if entry is None:
            self._make_room()
            entry = self._entries[key] = _Entry()
        entry.in_flight += 1
        entry.touched_at = now
        self._entries.move_to_end(key)

    def end(self, key: Hashable, now: float, failed: bool) -> None:
        """The check for ``key`` is over; a failure counts and may start a backoff."""
        entry = self._entries.get(key)
        if entry is None:
            return
        entry.in_flight -= 1
        entry.touched_at = now
        if failed:
            entry.failures += 1
            if entry.failures >= self.free:
                exponent = min(entry.failures - self.free, 40)
                delay = min(self.cap_s, self.base_s * 2 ** exponent)
                entry.blocked_until = max(entry.blocked_until, now + delay)

    def reset(self, key: Hashable) -> None:
        """Forget ``key``'s failures (after a success)."""
        entry = self._entries.get(key)
        if entry is None:
            return
        if entry.in_flight:
            entry.failures, entry.blocked_until = 0, 0.0
        else:
            del self._entries[key]

    def prune(self, now: float) -> None:
        """Drop entries idle for ``forget_after_s`` (the LRU end holds the oldest)."""
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.touched_at < self.forget_after_s:
                return
            if entry.in_flight:
                self._entries.move_to_end(key)
                return
            del self._entries[key]

    def _make_room(self) -> None:
        if len(self._entries) < self.max_entries:
            return
        for key, entry in self._entries.items():
            if entry.in_flight == 0:
                del self._entries[key]
                return


class KnownPairs:
    """(user name, address key) pairs with a successful login, an LRU with expiry."""

    def __init__(self, keep_s: float, max_entries: int):
        self.keep_s, self.max_entries = keep_s, max_entries
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, pair: tuple[str, str]) -> bool:
        return pair in self._seen

    def known(self, pair: tuple[str, str], now: float) -> bool:
        at = self._seen.get(pair)
        if at is None:
            return False
        if now - at >= self.keep_s:
            del self._seen[pair]
            return False
        return True

    def add(self, pair: tuple[str, str], now: float) -> None:
        self._seen[pair] = now
        self._seen.move_to_end(pair)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)

    def prune(self, now: float) -> None:
        while self._seen:
            pair, at = next(iter(self._seen.items()))
            if now - at < self.keep_s:
                return
            del self._seen[pair]


# ---- the guard ----------------------------------------------------------------------------------

def _lower_priority(delta: int) -> None:
    """Executor thread initializer: nice this thread (Linux nice values are per thread,
    and the threads argon2 starts inherit it) so the event loop wins the CPU."""
    if delta <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid)
                                                 + delta))


class LoginGuard:
    """Throttles logins and runs their password checks on a small dedicated executor.

    ``login()`` is the one entry point for both login paths; it must be called on the
    app's event loop (all bookkeeping is loop-confined, so there are no locks).
    """

    def __init__(self, auth: AuthStore, policy: LoginPolicy | None = None, *,
                 audit: FailedLoginAudit | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.auth = auth
        self.policy = p = policy or LoginPolicy()
        if p.forget_after_s < max(p.pair_cap_s, p.address_cap_s, p.user_cap_s):
            raise ValueError("forget_after_s must outlast every backoff cap")
        self.clock = clock
        self.audit = audit if audit is not None else FailedLoginAudit(auth.db)
        self.pairs = BackoffTable(p.pair_free, p.base_delay_s, p.pair_cap_s,
                                  p.forget_after_s, p.max_entries, p.one_at_a_time_s)
        self.addresses = BackoffTable(p.address_free, p.base_delay_s, p.address_cap_s,
                                      p.forget_after_s, p.max_entries, p.one_at_a_time_s)
        self.users = BackoffTable(p.user_free, p.base_delay_s, p.user_cap_s,
                                  p.forget_after_s, p.max_entries, p.one_at_a_time_s)
        self.known = KnownPairs(p.known_for_s, p.max_entries)
        self.hashing = 0  # attempts admitted to the executor and not finished there
        self.peak_hashing = 0
        self._delayed = 0
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task] = set()

    # ---- the entry point ----

    async def login(self, name: str, password: str, address: str | None,
                    via: str) -> Principal | None:
        """Check ``name``/``password`` for a caller at ``address`` (``via`` "api" or
        "web", for the audit): the principal, or None for wrong credentials.

        Raises ``LoginRefused`` (429 throttled, 503 too many checks in progress)
        without checking anything. Audits the outcome.
        """
        where, host = address_key(address), address or "?"
        now = self.clock()
        wait = self.wait(name, where, now)
        if wait > 0:
            self.audit.refused(name, host, via)
            await self._write_failures()
            await self._hold(wait)
            raise LoginRefused(429, "RATE_LIMITED", "too many failed logins; try again in "
                               f"{max(1, math.ceil(wait))} s", wait)
        p = self.policy
        if self.hashing >= p.hash_workers + p.hash_queue:
            await self._hold(1.0)
            raise LoginRefused(503, "LOGIN_BUSY",
                               "too many logins are being checked; try again shortly", 1.0)
        tables = self._tables(name, where)
        for table, key in tables:
            table.begin(key, now)
        outcome: bool | None = None  # unknown until the check finishes
        try:
            principal = await self._check(name, password)
            outcome = principal is not None
        finally:
            now = self.clock()
            for table, key in tables:
                table.end(key, now, failed=outcome is False)
        if principal is None:
            self.audit.failed(name, host, via)
            await self._write_failures()
            return None
        self.pairs.reset((name, where))
        self.users.reset(name)
        self.known.add((name, where), now)
        await asyncio.to_thread(write_rows, self.auth.db, [login_row(name, host, via)])
        return principal

    def wait(self, name: str, where: str, now: float) -> float:
        """Seconds until ``name`` may try from address key ``where`` (0: now)."""
        waits = [self.pairs.wait((name, where), now)]
        if not self.known.known((name, where), now):
            waits += [self.addresses.wait(where, now), self.users.wait(name, now)]
            if self.addresses.in_flight(where) >= self.policy.address_in_flight:
                # Its fair share of the password checks: one address must not fill the
                # queue and keep everyone else's logins out.
                waits.append(self.policy.one_at_a_time_s)
        return max(waits)

    def _tables(self, name: str, where: str) -> list[tuple[BackoffTable, Hashable]]:
        """The counters an attempt charges: all three, always (a known pair is exempt
        from waiting on the address and user counters, not from adding to them)."""
        return [(self.pairs, (name, where)), (self.addresses, where), (self.users, name)]

    # ---- the executor ----

    async def _check(self, name: str, password: str) -> Principal | None:
        loop = asyncio.get_running_loop()
        self.hashing += 1
        self.peak_hashing = max(self.peak_hashing, self.hashing)

        def finished(_: Future) -> None:
            # From the worker thread, when the check is really over: a caller that
            # gave up (cancelled) still held its place in the bound until then.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to do
                loop.call_soon_threadsafe(self._finished)

        try:
            future = self.executor.submit(self.auth.login, name, password)
        except BaseException:
            self.hashing -= 1
            raise
        future.add_done_callback(finished)
        return await asyncio.wrap_future(future)

    def _finished(self) -> None:
        self.hashing -= 1

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The password-check threads (started on first use)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.policy.hash_workers, thread_name_prefix="perpdesk-login",
                initializer=_lower_priority, initargs=(self.policy.hash_nice,))
        return self._executor

    # ---- refusals, audit, housekeeping ----

    async def _hold(self, wait: float) -> None:
        delay = min(wait, self.policy.refusal_delay_s)
        if delay <= 0 or self._delayed >= self.policy.max_delayed:
            return
        self._delayed += 1
        try:
            await asyncio.sleep(delay)
        finally:
            self._delayed -= 1

    async def _write_failures(self) -> None:
        if self.audit.due():
            await self.audit.drain()

    def housekeep(self) -> None:
        """Once a second: prune idle entries; write failed-login counts left pending."""
        now = self.clock()
        for table in (self.pairs, self.addresses, self.users):
            table.prune(now)
        self.known.prune(now)
        if self.audit.due():
            task = asyncio.get_running_loop().create_task(self.audit.drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        """Stop the executor's threads (they also end with the process)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def install(app_state: Any, guard: LoginGuard) -> LoginGuard:
    """Make ``guard`` the app's login guard and run its housekeeping every second."""
    old = getattr(app_state, "login_guard", None)
    app_state.login_guard = guard
    system = getattr(app_state, "system", None)
    if system is not None:
        if old is not None and old.housekeep in system.housekeepers:
            system.housekeepers.remove(old.housekeep)
        system.housekeepers.append(guard.housekeep)
    if old is not None and old is not guard:
        old.close()
    return guard


def guard_for(app_state: Any) -> LoginGuard:
    """The app's login guard (made with the default policy on first use)."""
    guard = getattr(app_state, "login_guard", None)
    if guard is None or guard.auth is not app_state.auth:
        guard = install(app_state, LoginGuard(app_state.auth))
    return guard
