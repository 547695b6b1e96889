"""Login abuse: the login guard (throttle, backoff, bounded password checks), the audit
entries for authentication, and where the first start's demo credentials go.

The guard's clock is a fake one the tests move (no sleeping through backoffs), and
refused attempts are answered at once (``refusal_delay_s=0``) unless a test says
otherwise; everything else is real: the app, argon2, SQLite, the audit table.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import stat
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth.audit import OVERFLOW, FailedLoginAudit
from app.auth.login_guard import (
    BackoffTable,
    LoginGuard,
    LoginPolicy,
    address_key,
    guard_for,
    install,
)
from app.auth.principal import Role
from app.cli import main as perpdesk
from app.store.tables import AuditRow

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import _TestClientTransport

PASSWORD = "correct horse battery"
WRONG = "not the password"
FREE = {"pair_free": 1000, "address_free": 1000, "user_free": 1000}  # rules not under test


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 10_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def guarded(api: Any, clock: Clock | None = None, wall: Callable[[], float] | None = None,
            audit: FailedLoginAudit | None = None, **policy: Any) -> LoginGuard:
    """Install a login guard with this policy (refusals answered at once by default)."""
    policy.setdefault("refusal_delay_s", 0.0)
    audit = audit or FailedLoginAudit(api.system.db, wall=wall or time.time)
    guard = LoginGuard(api.auth, LoginPolicy(**policy), audit=audit,
                       clock=clock or time.monotonic)
    return install(api.app.state, guard)


def client_at(api: Any, host: str) -> httpx.Client:
    """An HTTP client for the app whose requests come from ``host``."""
    transport = _TestClientTransport(api.client.app, portal_factory=api.client._portal_factory,
                                     app_state=api.client.app_state, client=(host, 40_000))
    return httpx.Client(transport=transport, base_url=str(api.client.base_url),
                        follow_redirects=False)


def login(http: httpx.Client, name: str, password: str) -> httpx.Response:
    return http.post("/api/v1/auth/login", json={"name": name, "password": password})


def form_login(http: httpx.Client, name: str, password: str) -> httpx.Response:
    return http.post("/login", data={"name": name, "password": password, "next": "/"})


def assert_limited(r: httpx.Response, retry_after: int | None = None) -> int:
    """A 429 RATE_LIMITED in the API's error shape; returns its Retry-After."""
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["code"] == "RATE_LIMITED" and "try again" in error["message"]
    assert set(r.json()) == {"error"} and set(error) == {"code", "message", "details"}
    seconds = int(r.headers["retry-after"])
    assert seconds >= 1 and float(error["details"]["retry_after_s"]) <= seconds
    if retry_after is not None:
        assert seconds == retry_after
    return seconds


def auth_rows(api: Any, action: str | None = None) -> list[AuditRow]:
    where = [AuditRow.scope == "auth"]
    if action is not None:
        where.append(AuditRow.action == action)
    return sorted(api.rows(AuditRow, *where), key=lambda r: r.id)


def flush(api: Any, guard: LoginGuard) -> None:
    api.client.portal.call(guard.audit.flush)


# ---- throttling ------------------------------------------------------------------------------

def test_a_pair_backs_off_exponentially_with_retry_after_up_to_the_cap(api):
    api.auth.add_user("alice", Role.TRADER, PASSWORD)
    clock = Clock()
    guarded(api, clock, **{**FREE, "pair_free": 3, "pair_cap_s": 8.0})
    with client_at(api, "10.0.0.7") as http:
        assert [login(http, "alice", WRONG).status_code for _ in range(3)] == [401] * 3
        # Blocked: even the right password is not checked.
        wait = assert_limited(login(http, "alice", PASSWORD), retry_after=1)
        for expected in (2, 4, 8, 8):  # doubling, then capped
            clock.advance(wait)
            assert login(http, "alice", WRONG).status_code == 401
            wait = assert_limited(login(http, "alice", WRONG), retry_after=expected)
        clock.advance(wait)
        assert login(http, "alice", PASSWORD).status_code == 200


def test_one_address_is_throttled_over_every_user_name(api):
    guard = guarded(api, Clock(), **{**FREE, "address_free": 4})
    with client_at(api, "10.0.0.9") as sprayer, client_at(api, "10.0.0.10") as other:
        codes = [login(sprayer, f"user{i}", WRONG).status_code for i in range(4)]
        assert codes == [401] * 4
        assert_limited(login(sprayer, "somebody-else", WRONG), retry_after=1)
        assert login(other, "somebody-else", WRONG).status_code == 401
    assert guard.addresses.failures("10.0.0.9") == 4


def test_address_keys_group_ipv6_by_64():
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert address_key("2001:db8:0:1::1") != address_key("2001:db8::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key(None) == "?" and address_key("testclient") == "testclient"


def test_an_attacker_locks_only_their_own_pair_and_only_slows_the_user(api):
    """The hard lockout is per (user, address); per user it is a capped slowdown that
    addresses the user has logged in from skip."""
    api.auth.add_user("op", Role.OPERATOR, PASSWORD)
    clock = Clock()
    guarded(api, clock, **{**FREE, "pair_free": 2, "user_free": 3, "user_cap_s": 4.0})
    office, attacker, elsewhere = (client_at(api, h) for h in
                                   ("10.0.0.1", "10.6.6.1", "10.0.0.2"))
    with office, attacker, elsewhere:
        assert login(office, "op", PASSWORD).status_code == 200  # a known pair from now on
        assert [login(attacker, "op", WRONG).status_code for _ in range(2)] == [401, 401]
        assert_limited(login(attacker, "op", PASSWORD))  # the attacker's pair: locked
        with client_at(api, "10.6.6.2") as second:
            assert login(second, "op", WRONG).status_code == 401  # 3rd failure for "op"
        # The user is slowed down from addresses it never logged in from...
        assert_limited(login(elsewhere, "op", PASSWORD))
        # ...but not from the office, and a success there resets the user's counter.
        assert login(office, "op", PASSWORD).status_code == 200
        assert login(elsewhere, "op", PASSWORD).status_code == 200
        assert_limited(login(attacker, "op", PASSWORD))  # the attacker's pair stays locked

        # The per-user slowdown doubles and is capped (4 s here), however many
        # addresses take part.
        waits = []
        for i in range(7):
            with client_at(api, f"10.6.7.{i}") as bot:
                r = login(bot, "op", WRONG)
                if r.status_code == 429:
                    waits.append(assert_limited(r))
                    clock.advance(waits[-1])
                    r = login(bot, "op", WRONG)
                assert r.status_code == 401
        assert waits == [1, 2, 4, 4]
        assert login(office, "op", PASSWORD).status_code == 200


def test_a_success_resets_the_users_counter(api):
    api.auth.add_user("alice", Role.TRADER, PASSWORD)
    guarded(api, Clock(), **{**FREE, "pair_free": 3})
    with client_at(api, "10.0.0.3") as http:
        assert [login(http, "alice", WRONG).status_code for _ in range(2)] == [401, 401]
        assert login(http, "alice", PASSWORD).status_code == 200
        # Without the reset the 3rd failure would have blocked the 4th attempt.
        assert [login(http, "alice", WRONG).status_code for _ in range(3)] == [401] * 3
        assert_limited(login(http, "alice", PASSWORD))


def test_the_form_and_the_api_share_one_guard(api):
    api.auth.add_user("alice", Role.TRADER, PASSWORD)
    guarded(api, Clock(), **{**FREE, "pair_free": 3})
    with client_at(api, "10.0.0.4") as http:
        assert form_login(http, "alice", WRONG).status_code == 401
        assert form_login(http, "alice", WRONG).status_code == 401
        assert login(http, "alice", WRONG).status_code == 401
        r = form_login(http, "alice", PASSWORD)
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.headers["content-type"].startswith("text/html")
        assert "Too many failed logins. Try again in 1 s." in r.text
        assert 'name="password"' in r.text  # the form again, with the message
        assert_limited(login(http, "alice", PASSWORD), retry_after=1)
        # A name longer than any user name is refused without a check.
        r = form_login(http, "x" * 65, WRONG)
        assert r.status_code == 401 and "Wrong user name or password." in r.text
    with client_at(api, "10.0.0.5") as http:
        assert form_login(http, "alice", PASSWORD).status_code == 303


def test_the_default_guard_throttles_too(api):
    """No guard installed by the test: the app's own one, with the default policy (5
    free failures per pair) and refusals held back for a moment."""
    with client_at(api, "10.0.0.11") as http:
        assert [login(http, "nobody", WRONG).status_code for _ in range(5)] == [401] * 5
        assert_limited(login(http, "nobody", WRONG), retry_after=1)
    guard = guard_for(api.app.state)
    assert guard.policy == LoginPolicy() and guard.pairs.failures(("nobody", "10.0.0.11")) == 5


def test_tables_are_bounded_and_idle_entries_are_forgotten(api):
    clock = Clock()
    guard = guarded(api, clock, max_entries=4, pair_cap_s=2.0, address_cap_s=2.0,
                    user_cap_s=2.0, forget_after_s=10.0)
    for i in range(7):
        with client_at(api, f"10.1.0.{i}") as http:
            assert login(http, f"name{i}", WRONG).status_code == 401
    assert (len(guard.pairs), len(guard.addresses), len(guard.users)) == (4, 4, 4)
    assert guard.pairs.failures(("name6", "10.1.0.6")) == 1  # the newest are kept
    assert guard.pairs.failures(("name0", "10.1.0.0")) == 0  # the oldest were evicted
    clock.advance(10)

    async def housekeep() -> None:
        guard.housekeep()

    api.client.portal.call(housekeep)
    assert (len(guard.pairs), len(guard.addresses), len(guard.users)) == (0, 0, 0)


def test_backoff_table_bound_holds_under_many_keys():
    table = BackoffTable(free=1, base_s=1, cap_s=60, forget_after_s=600, max_entries=100,
                         one_at_a_time_s=1)
    for i in range(10_000):
        table.begin(f"k{i}", float(i))
        table.end(f"k{i}", float(i), failed=True)
    assert len(table) == 100
    assert table.wait("k9999", 9999.5) == pytest.approx(0.5)
    # An entry with an attempt in flight is never evicted (its end must find it).
    table.begin("busy", 10_000.0)
    for i in range(200):
        table.begin(f"x{i}", 10_001.0)
        table.end(f"x{i}", 10_001.0, failed=True)
    assert len(table) == 100
    # Past its free failures (1 here) a key admits one attempt at a time.
    assert table.wait("busy", 10_002.0) == 1.0
    table.end("busy", 10_002.0, failed=True)
    assert table.failures("busy") == 1 and table.wait("busy", 10_002.0) == 1.0


def test_password_checks_run_off_the_loop_one_at_a_time(api):
    """A login storm: password checks run on the guard's own thread, one at a time,
    excess attempts are refused at once (503), and the event loop keeps serving."""
    api.auth.add_user("alice", Role.TRADER, PASSWORD)
    guard = guarded(api, **FREE, hash_workers=1, hash_queue=2)
    checks: list[tuple[float, float, str]] = []
    running, peak = [0], [0]
    lock = threading.Lock()
    real_login = api.auth.login

    def observed_login(name: str, password: str) -> Any:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        started = time.monotonic()
        try:
            return real_login(name, password)
        finally:
            with lock:
                running[0] -= 1
                checks.append((started, time.monotonic(), threading.current_thread().name))

    api.auth.login = observed_login
    statuses: list[int] = []
    busy: list[httpx.Response] = []
    stop = threading.Event()

    def storm(i: int) -> None:
        with client_at(api, f"10.2.0.{i}") as http:
            while not stop.is_set():
                r = login(http, f"storm{i}", WRONG)
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code == 503:
                        busy.append(r)
                if r.status_code == 503:
                    time.sleep(0.02)  # a spinning test thread would starve the check

    threads = [threading.Thread(target=storm, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    pings: list[tuple[float, float, int]] = []
    deadline = time.monotonic() + 60
    try:
        while len(checks) < 3 and time.monotonic() < deadline:
            sent = time.monotonic()
            status = api.get("/healthz", None).status_code
            pings.append((sent, time.monotonic(), status))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        api.auth.login = real_login

    assert len(checks) >= 3
    assert {name.split("_")[0] for _, _, name in checks} == {"perpdesk-login"}
    assert peak[0] == 1 and guard.peak_hashing <= 3
    assert all(status == 200 for _, _, status in pings)
    # Some health check was sent and answered while a password check was running:
    # the checks do not hold the event loop.
    assert any(a <= sent and done <= b for sent, done, _ in pings for a, b, _ in checks)
    assert set(statuses) <= {401, 503} and busy
    error = busy[0].json()["error"]
    assert error["code"] == "LOGIN_BUSY" and busy[0].headers["retry-after"] == "1"
    assert guard.hashing == 0  # every admitted check has finished and was counted out


def test_one_address_cannot_fill_the_check_queue(api):
    """While checks are held up: a second attempt from the same address is refused
    (429, its share is one), another address still gets a place in the queue, and
    once the queue is full the next attempt is refused at once with 503."""
    guard = guarded(api, **FREE, hash_workers=1, hash_queue=1, address_in_flight=1)
    entered, release = threading.Event(), threading.Event()
    real_login = api.auth.login

    def held_login(name: str, password: str) -> Any:
        entered.set()
        release.wait(30)
        return real_login(name, password)

    api.auth.login = held_login
    answers: dict[str, int] = {}

    def attempt(host: str) -> None:
        with client_at(api, host) as http:
            answers[host] = login(http, f"user-at-{host}", WRONG).status_code

    first = threading.Thread(target=attempt, args=("10.7.0.1",))
    queued = threading.Thread(target=attempt, args=("10.7.0.2",))
    try:
        first.start()
        assert entered.wait(30)
        with client_at(api, "10.7.0.1") as same:
            assert_limited(login(same, "another-name", WRONG), retry_after=1)
        queued.start()
        deadline = time.monotonic() + 30
        while guard.hashing < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert guard.hashing == 2
        with client_at(api, "10.7.0.3") as third:
            r = login(third, "someone", WRONG)
        assert r.status_code == 503 and r.json()["error"]["code"] == "LOGIN_BUSY"
        assert r.headers["retry-after"] == "1"
    finally:
        release.set()
        first.join(30)
        queued.join(30)
        api.auth.login = real_login
    assert answers == {"10.7.0.1": 401, "10.7.0.2": 401}
    assert guard.hashing == 0


# ---- audit -----------------------------------------------------------------------------------

def _all_text(rows: list[AuditRow]) -> str:
    return json.dumps([[r.actor, r.action, r.scope, r.reason, r.previous, r.details]
                       for r in rows])


def test_logins_are_audited_and_never_hold_a_password(api):
    api.auth.add_user("alice", Role.TRADER, PASSWORD)
    guard = guarded(api, Clock(), **FREE)
    with client_at(api, "10.3.0.1") as http:
        assert login(http, "alice", PASSWORD).status_code == 200
        assert form_login(http, "alice", PASSWORD).status_code == 303
        assert login(http, "alice", "wrong-but-close").status_code == 401
        assert login(http, "mallory", "hunter2-guess").status_code == 401
    flush(api, guard)
    ok = auth_rows(api, "login")
    assert [(r.actor, r.details["via"], r.details["address"]) for r in ok] == [
        ("alice", "api", "10.3.0.1"), ("alice", "web", "10.3.0.1")]
    failed = auth_rows(api, "login-failed")
    assert [(r.actor, r.details["failures"], r.details["refused"]) for r in failed] == [
        ("alice", 1, 0), ("mallory", 1, 0)]
    assert all(r.scope == "auth" and "10.3.0.1" in r.reason for r in ok + failed)
    text = _all_text(auth_rows(api))
    for secret in (PASSWORD, "wrong-but-close", "hunter2-guess"):
        assert secret not in text


def test_failed_logins_are_coalesced_per_name_address_and_minute(api):
    clock, wall = Clock(), Clock(1_700_000_000.0)  # 22:13:20 UTC: the window began at :00
    guard = guarded(api, clock, wall, **{**FREE, "pair_free": 3})
    with client_at(api, "10.4.0.1") as http, client_at(api, "10.4.0.2") as other:
        assert [login(http, "bob", WRONG).status_code for _ in range(3)] == [401] * 3
        assert_limited(login(http, "bob", WRONG))
        assert_limited(login(http, "bob", PASSWORD))
        assert login(other, "bob", WRONG).status_code == 401
        flush(api, guard)
        rows = auth_rows(api, "login-failed")
        assert [(r.details["address"], r.details["failures"], r.details["refused"])
                for r in rows] == [("10.4.0.1", 3, 2), ("10.4.0.2", 1, 0)]
        assert rows[0].details["window_start"] == "2023-11-14T22:13:00+00:00"
        assert "3 wrong user name or password, 2 refused" in rows[0].reason
        # The next minute gets a row of its own.
        wall.advance(60)
        clock.advance(1)
        assert login(http, "bob", WRONG).status_code == 401
        flush(api, guard)
        rows = auth_rows(api, "login-failed")
        assert [(r.details["address"], r.details["failures"]) for r in rows] == [
            ("10.4.0.1", 3), ("10.4.0.2", 1), ("10.4.0.1", 1)]


def test_a_failed_login_flood_writes_few_rows_and_few_transactions(api):
    """10,000 failed or refused attempts over 500 (name, address) pairs in one minute:
    at most the row budget plus one overflow row, each count kept, and one write in
    flight at a time (a transaction per batch, not per attempt)."""
    writes = [0]

    class CountingAudit(FailedLoginAudit):
        def _write(self, batch: Any) -> Any:
            writes[0] += 1
            return super()._write(batch)

    wall = Clock(1_700_000_040.0)
    audit = CountingAudit(api.system.db, wall=wall, max_rows_per_window=20)

    async def flood() -> None:
        drains = []
        for i in range(10_000):
            pair = (f"name{i % 500}", f"10.5.{i % 7}.1")
            (audit.failed if i % 3 else audit.refused)(*pair, "api")
            if audit.due():
                drains.append(asyncio.ensure_future(audit.drain()))
            if i % 100 == 0:
                await asyncio.sleep(0)
        await asyncio.gather(*drains)
        await audit.flush()

    api.client.portal.call(flood)
    rows = [r for r in auth_rows(api, "login-failed")]
    assert len(rows) == 21 and rows[-1].actor == OVERFLOW == rows[-1].details["address"]
    assert sum(r.details["failures"] for r in rows) == 6666
    assert sum(r.details["refused"] for r in rows) == 3334
    assert writes[0] <= 30
    assert audit.pending <= 21


def test_user_and_key_changes_are_audited_from_the_cli(api, monkeypatch):
    monkeypatch.setenv("USER", "ops-person")
    monkeypatch.setenv("LOGNAME", "ops-person")
    url = api.system.settings.database_url
    db = ["--database-url", url]
    assert perpdesk(["users", "add", "zoe", "--role", "viewer", "--client", "demo",
                     "--password", "zoe-password-1", *db]) == 0
    assert perpdesk(["keys", "create", "--role", "trader", "--name", "zoe-key", *db]) == 0
    prefix = next(k.prefix for k in api.auth.list_keys() if k.name == "zoe-key")
    assert perpdesk(["keys", "revoke", "zoe-key", *db]) == 0
    assert perpdesk(["keys", "revoke", "zoe-key", *db]) == 1  # nothing left: no entry
    assert perpdesk(["users", "remove", "zoe", *db]) == 0
    assert perpdesk(["users", "remove", "zoe", *db]) == 1

    rows = [r for r in auth_rows(api) if r.actor == "cli:ops-person"]
    assert [r.action for r in rows] == ["user-add", "key-create", "key-revoke", "user-remove"]
    add, create, revoke, remove = rows
    assert add.details == {"user": "zoe", "role": "viewer", "clients": "demo"}
    assert create.details == {"name": "zoe-key", "prefix": prefix, "role": "trader",
                              "clients": ""}
    assert revoke.details["keys"] == [{"name": "zoe-key", "prefix": prefix, "role": "trader"}]
    assert remove.details["user"] == "zoe" and remove.details["sessions_ended"] == 0
    assert "zoe-password-1" not in _all_text(auth_rows(api))
    assert all(r.scope == "auth" for r in rows)


def test_keys_made_by_the_server_are_audited_without_the_key(api):
    # The fixture's keys were made through AuthStore: actor "system".
    rows = auth_rows(api, "key-create")
    assert {r.details["name"] for r in rows} >= {"viewer", "trader", "operator", "admin"}
    assert all(r.actor == "system" for r in rows)
    text = _all_text(rows)
    assert all(key not in text for key in api.keys.values())


# ---- demo credentials --------------------------------------------------------------------

def _no_secret_logged(caplog: pytest.LogCaptureFixture, secrets: list[str]) -> None:
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in logged


def test_demo_credentials_go_to_a_private_file_without_a_terminal(make_api, caplog,
                                                                  monkeypatch, capsys):
    not_a_terminal = io.StringIO()
    monkeypatch.setattr("sys.stderr", not_a_terminal)
    caplog.set_level(logging.DEBUG)
    api = make_api(demo_credentials=True)
    path = Path(api.auth.db.url.database).parent / "perpdesk-demo-credentials.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    key = next(w for w in text.split() if w.startswith("pdk_"))
    password = text.split("demo-operator / ")[1].split()[0]
    assert api.get("/api/v1/auth/me", key).json()["name"] == "demo-operator"
    assert login(api.client, "demo-operator", password).status_code == 200
    _no_secret_logged(caplog, [key, password])
    assert any(str(path) in r.getMessage() for r in caplog.records)
    out = capsys.readouterr().out + not_a_terminal.getvalue()
    assert key not in out and password not in out
    rows = auth_rows(api)
    assert [(r.actor, r.action) for r in rows[:2]] == [("system:first-start", "key-create"),
                                                        ("system:first-start", "user-add")]
    assert key not in _all_text(rows) and password not in _all_text(rows)


def test_demo_credentials_are_printed_on_a_terminal_and_not_logged(make_api, tmp_path, caplog,
                                                                   monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    caplog.set_level(logging.DEBUG)
    api = make_api(demo_credentials=True)
    banner = terminal.getvalue()
    key = next(w for w in banner.split() if w.startswith("pdk_"))
    password = banner.split("demo-operator / ")[1].split()[0]
    assert api.get("/api/v1/auth/me", key).status_code == 200
    _no_secret_logged(caplog, [key, password])
    assert not list(tmp_path.rglob("perpdesk-demo-credentials.txt"))
