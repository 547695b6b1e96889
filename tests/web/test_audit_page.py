"""The audit log page: filters narrow the list, details read as sentences and tables
(not JSON), authentication entries are there for users over every client and not for
users scoped to clients."""

from __future__ import annotations

import urllib.parse
import urllib.request

import pytest
from browser_support import Server, login
from playwright.sync_api import Page, expect

ROWS = "#audit > tbody > tr[data-audit-id]"


@pytest.fixture(scope="module")
def audited(server: Server) -> Server:
    """Kill switches on several scopes, a close-all with results, a failed login."""
    calls = [
        ("reduce-only", {"client": "demo", "reason": "audit: demo reduce-only"}),
        ("disable-trading", {"venue": "paper-bybit", "reason": "audit: bybit halt"}),
        ("enable-trading", {"client": "demo", "reason": "audit: demo back"}),
        ("enable-trading", {"venue": "paper-bybit", "reason": "audit: bybit back"}),
    ]
    for action, body in calls:
        status, answer = server.api("POST", f"/controls/{action}", body)
        assert status == 200, answer
    for client in ("demo", "demo-2"):
        status, order = server.api("POST", "/orders", {
            "client": client, "venue": "paper-binance", "symbol": "BTC-PERP", "side": "buy",
            "type": "market", "qty": "0.001"})
        assert status == 201, order
    status, answer = server.api("POST", "/controls/close-all", {"reason": "audit: flatten"})
    assert status == 200 and len(answer["results"]) == 2, answer
    status, answer = server.api("POST", "/controls/enable-trading", {"reason": "audit: done"})
    assert status == 200, answer
    # A wrong password through the login form (audited as login-failed, scope auth).
    data = urllib.parse.urlencode({"name": "mallory", "password": "not-the-password",
                                   "next": "/"}).encode()
    try:
        urllib.request.urlopen(f"{server.base_url}/login", data=data, timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    return server


def _column(page: Page, index: int) -> list[str]:
    return [t.strip() for t in page.locator(f"{ROWS} > td:nth-child({index})").all_inner_texts()]


def test_filters_narrow_the_list(page: Page, audited: Server) -> None:
    login(page, audited, "op", "/audit")
    everything = page.locator(ROWS)
    expect(everything.first).to_be_visible()
    total = everything.count()
    assert {"reduce-only", "close-all", "login", "user-add", "key-create"} <= set(
        _column(page, 3))

    # The form: pick an action, submit; the list holds that action only.
    page.select_option("#audit-filters select[name=action]", "disable-trading")
    with page.expect_navigation():
        page.click("#audit-filters button[type=submit]")
    assert "action=disable-trading" in page.url
    assert _column(page, 3) == ["disable-trading"]
    expect(page.locator(ROWS)).to_contain_text("audit: bybit halt")
    expect(page.locator("#audit-filters select[name=action]")).to_have_value("disable-trading")

    def narrowed(query: str) -> list[str]:
        page.goto(f"{audited.base_url}/audit?{query}")
        expect(page.locator("#audit")).to_be_visible()
        return _column(page, 5)  # the reasons

    reasons = narrowed("scope=venue+paper-bybit")
    assert sorted(reasons) == ["audit: bybit back", "audit: bybit halt"]
    assert set(_column(page, 4)) == {"venue paper-bybit"}
    reasons = narrowed("client=demo")
    assert sorted(reasons) == ["audit: demo back", "audit: demo reduce-only"]
    reasons = narrowed("actor=WEB-TESTS&action=enable-trading")  # the API key's actor, any case
    assert sorted(reasons) == ["audit: bybit back", "audit: demo back", "audit: done"]
    assert set(_column(page, 2)) == {"key:web-tests"}
    assert narrowed("action=login-failed") and set(_column(page, 2)) == {"mallory"}
    assert narrowed("until=2000-01-01T00:00") == []
    expect(page.locator("#audit")).to_contain_text("No entries match these filters")
    assert narrowed("since=2999-01-01T00:00") == []
    assert 0 < len(narrowed("since=2000-01-01T00:00&until=2999-01-01T00:00")) == total
    page.goto(f"{audited.base_url}/audit?action=bogus")
    expect(page.locator(".field-error")).to_contain_text("action")  # said, and ignored
    assert page.locator(ROWS).count() == total


def test_details_are_readable(page: Page, audited: Server) -> None:
    login(page, audited, "op", "/audit")
    row = page.locator(ROWS, has_text="audit: demo reduce-only")
    expect(row.locator("td.details")).to_have_text("active → reduce-only")
    close_all = page.locator(ROWS, has_text="audit: flatten")
    results = close_all.locator("td.details table.close-results tbody tr")
    expect(results).to_have_count(2)
    expect(results.first).to_contain_text("BTC-PERP")
    expect(results.first).to_contain_text("closed")
    failed = page.locator(ROWS).filter(has=page.locator("td", has_text="login-failed"))
    expect(failed.locator("td.details")).to_contain_text("Wrong password 1")
    details = " ".join(page.locator(f"{ROWS} > td.details").all_inner_texts())
    assert '{"' not in details and '"state"' not in details, details  # no raw JSON


def test_a_scoped_user_sees_no_authentication_entries(page: Page, audited: Server) -> None:
    login(page, audited, "trader", "/audit")  # scoped to demo
    actions = set(_column(page, 3))
    assert "reduce-only" in actions and "close-all" in actions
    assert not actions & {"login", "login-failed", "user-add", "key-create"}
    assert "venue paper-bybit" not in _column(page, 4)
    expect(page.locator("#audit-filters select[name=scope] option[value=auth]")
           ).to_have_count(0)
    page.goto(f"{audited.base_url}/audit?scope=auth")
    expect(page.locator(ROWS)).to_have_count(0)
    # The close-all entry is cut down to their own client.
    results = page.locator(ROWS, has_text="audit: flatten").locator(
        "td.details table.close-results tbody tr")
    page.goto(f"{audited.base_url}/audit?action=close-all")
    expect(results).to_have_count(1)
    expect(results.first.locator("td").first).to_have_text("demo")
