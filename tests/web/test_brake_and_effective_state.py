"""The operator's brake in the banner of every page, by keyboard; the kill-switch panel's
effective state per account; enabling a wide scope and the narrower ones it leaves."""

from __future__ import annotations

import re

import pytest
from browser_support import Server, login, new_tab, trading_state, wait_live
from playwright.sync_api import Page, expect

PAGES = ("/", "/controls", "/orders", "/positions", "/trades", "/audit")
ACTIVE = re.compile(r"\bstate-active\b")
REDUCE_ONLY = re.compile(r"\bstate-reduce_only\b")
HALTED = re.compile(r"\bstate-halted\b")


def _reset(server: Server) -> None:
    """Every scope back to active."""
    status, scopes = server.api("GET", "/controls")
    assert status == 200, scopes
    for s in scopes:
        if s["state"] != "active":
            body = {"reason": "test cleanup"}
            body.update({k: s[k] for k in ("client", "venue") if s[k]})
            status, answer = server.api("POST", "/controls/enable-trading", body)
            assert status == 200, answer


def _focused_id(page: Page) -> str:
    return page.evaluate("document.activeElement ? document.activeElement.id : ''")


@pytest.mark.parametrize(("path", "action", "state"), [
    (path, *(("reduce-only", REDUCE_ONLY) if i % 2 == 0 else ("disable-trading", HALTED)))
    for i, path in enumerate(PAGES)])
def test_the_banner_brake_works_from_every_page_by_keyboard(page: Page, server: Server,
                                                            path: str, action: str,
                                                            state: re.Pattern) -> None:
    login(page, server, "op", path)
    wait_live(page)
    banner = page.locator("#banner")
    expect(banner).to_have_class(ACTIVE)
    button = page.locator(f"#banner button[data-action='{action}']")
    try:
        # Escape cancels: nothing changes, focus returns to the button.
        button.focus()
        page.keyboard.press("Enter")
        dialog = page.locator("dialog#confirm")
        expect(dialog).to_be_visible()
        expect(page.locator("#confirm-scope")).to_contain_text("global")
        assert _focused_id(page) == "confirm-reason", "focus is not in the dialog"
        page.keyboard.type("changed my mind")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        assert _focused_id(page) == f"brake-{action}"
        assert trading_state(server) == "active"

        # Enter opens it again; a reason, Tab to the confirm button, Enter.
        page.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        assert page.locator("#confirm-reason").input_value() == ""  # a fresh reason
        page.keyboard.type(f"brake test from {path}")
        page.keyboard.press("Tab")  # Cancel
        page.keyboard.press("Tab")  # Confirm
        assert _focused_id(page) == "confirm-go"
        with page.expect_response(lambda r: f"/ui/controls/{action}" in r.url):
            page.keyboard.press("Enter")
        expect(dialog).to_be_hidden()
        expect(banner).to_have_class(state)  # pushed to this page
        # The result: in place on the kill-switch panel, as a toast elsewhere.
        where = "#control-result" if path == "/controls" else "#toasts"
        expect(page.locator(where)).to_contain_text(
            "active → reduce-only" if action == "reduce-only" else "active → halted")
        assert trading_state(server) == ("reduce_only" if action == "reduce-only"
                                         else "halted")
        # The brake stays in the re-rendered banner, and keeps the keyboard's place.
        expect(button).to_be_visible()
        expect(button).to_be_focused()
        assert page.js_errors == []  # type: ignore[attr-defined]
    finally:
        _reset(server)
    # Audited like the panel's switches, with the reason given.
    page.goto(f"{server.base_url}/audit?action={action}&scope=global")
    expect(page.locator("#audit > tbody > tr", has_text=f"brake test from {path}")
           ).to_have_count(1)


@pytest.mark.parametrize("user", ["viewer", "trader"])
def test_viewers_and_traders_see_the_state_not_the_brake(page: Page, server: Server,
                                                         user: str) -> None:
    status, body = server.api("POST", "/controls/reduce-only", {"reason": "brake roles"})
    assert status == 200, body
    try:
        for path in ("/", "/orders", "/controls"):
            login(page, server, user, path) if path == "/" else page.goto(
                f"{server.base_url}{path}")
            wait_live(page)
            expect(page.locator("#banner")).to_have_class(REDUCE_ONLY)
            expect(page.locator("#banner")).to_contain_text("REDUCE-ONLY")
            expect(page.locator("#banner button")).to_have_count(0)
            expect(page.locator("button[data-action]")).to_have_count(0)
    finally:
        _reset(server)


def test_each_account_shows_the_state_in_force_and_where_it_comes_from(
        page: Page, server: Server) -> None:
    login(page, server, "op", "/controls")
    wait_live(page)
    account = page.locator('tr[data-scope="client demo, venue paper-binance"]')
    expect(account.locator("td.in-force .chip")).to_have_text("ACTIVE")
    try:
        status, body = server.api("POST", "/controls/reduce-only", {"reason": "effective"})
        assert status == 200, body
        # Own setting still active, but reduce-only is in force, from global (pushed).
        expect(account.locator("td.own .chip")).to_have_text("ACTIVE")
        expect(account.locator("td.in-force .chip")).to_have_text("REDUCE-ONLY")
        expect(account.locator("td.in-force")).to_contain_text("set on global")
        client_row = page.locator('tr[data-scope="client demo-2"]')
        expect(client_row.locator("td.own .chip")).to_have_text("ACTIVE")
        expect(client_row.locator("td.in-force .chip")).to_have_text("REDUCE-ONLY")

        # A stricter narrower scope wins over the global one for its accounts only.
        status, body = server.api("POST", "/controls/disable-trading",
                                  {"client": "demo", "reason": "effective"})
        assert status == 200, body
        expect(account.locator("td.in-force .chip")).to_have_text("HALTED")
        expect(account.locator("td.in-force")).to_contain_text("set on client demo")
        other = page.locator('tr[data-scope="client demo-2, venue paper-bybit"]')
        expect(other.locator("td.in-force .chip")).to_have_text("REDUCE-ONLY")
        expect(other.locator("td.in-force")).to_contain_text("set on global")
        # The global row: which accounts are under what.
        global_row = page.locator('tr[data-scope="global"] td.in-force')
        expect(global_row.locator(".in-force-group")).to_have_count(2)
        expect(global_row.locator(".in-force-group").first).to_contain_text(
            "demo · paper-binance, demo · paper-bybit")
        assert page.js_errors == []  # type: ignore[attr-defined]
    finally:
        _reset(server)


def _restrict_global_and_two_narrower(server: Server) -> None:
    for body in ({"reason": "incident"}, {"client": "demo", "reason": "incident"},
                 {"venue": "paper-bybit", "reason": "incident"}):
        action = "disable-trading" if "client" in body else "reduce-only"
        status, answer = server.api("POST", f"/controls/{action}", body)
        assert status == 200, answer


def _enable_global(page: Page, reason: str, cascade: bool) -> None:
    page.click('tr[data-scope="global"] button[data-action="enable-trading"]')
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    narrower = page.locator("#confirm-narrower")
    expect(narrower).to_be_visible()
    expect(narrower).to_contain_text("stay restricted")
    expect(narrower.locator("li")).to_have_text(["client demo: halted",
                                                 "venue paper-bybit: reduce-only"])
    if cascade:
        page.check("#confirm-cascade")
    page.fill("#confirm-reason", reason)
    with page.expect_response(lambda r: "/ui/controls/enable-trading" in r.url):
        page.click("#confirm-go")
    expect(dialog).to_be_hidden()


def _audited(server: Server, page: Page, reason: str) -> list[str]:
    """The scopes of the enable-trading entries with this reason, on the audit page."""
    audit = new_tab(page)
    audit.goto(f"{server.base_url}/audit?action=enable-trading")
    rows = audit.locator("#audit > tbody > tr", has_text=reason)
    scopes = [r.locator("td").nth(3).inner_text() for r in rows.all()]
    audit.close()
    return sorted(scopes)


def test_enabling_global_says_what_stays_restricted_and_offers_to_clear_it(
        page: Page, server: Server) -> None:
    _restrict_global_and_two_narrower(server)
    try:
        login(page, server, "op", "/controls")
        wait_live(page)
        _enable_global(page, "all clear, step 1", cascade=False)
        result = page.locator("#control-result")
        expect(result).to_contain_text("global: reduce-only → active")
        still = result.locator(".still-restricted")
        expect(still).to_contain_text("client demo: halted")
        expect(still).to_contain_text("venue paper-bybit: reduce-only")
        assert trading_state(server) == "active"
        assert trading_state(server, "client demo") == "halted"

        # "Enable these too": one confirmed action, each scope enabled and audited.
        page.click("#enable-narrower")
        expect(page.locator("dialog#confirm")).to_be_visible()
        expect(page.locator("#confirm-cascade-label")).to_be_hidden()
        expect(page.locator("#confirm-reason")).to_have_value("all clear, step 1")
        page.fill("#confirm-reason", "all clear, step 2")
        with page.expect_response(lambda r: "/ui/controls/enable-narrower" in r.url):
            page.click("#confirm-go")
        expect(result.locator(".cascade li")).to_have_count(2)
        expect(result.locator(".still-restricted")).to_have_count(0)
        assert trading_state(server, "client demo") == "active"
        assert trading_state(server, "venue paper-bybit") == "active"
        expect(page.locator('tr[data-scope="client demo, venue paper-binance"] '
                            "td.in-force .chip")).to_have_text("ACTIVE")
        assert _audited(server, page, "all clear, step 2") == ["client demo",
                                                               "venue paper-bybit"]
    finally:
        _reset(server)


def test_enabling_global_with_the_narrower_scopes_in_one_action(page: Page,
                                                                server: Server) -> None:
    _restrict_global_and_two_narrower(server)
    try:
        login(page, server, "op", "/controls")
        wait_live(page)
        _enable_global(page, "everything back", cascade=True)
        result = page.locator("#control-result")
        expect(result).to_contain_text("global: reduce-only → active")
        expect(result.locator(".cascade li")).to_have_text([
            re.compile("client demo: halted → active"),
            re.compile("venue paper-bybit: reduce-only → active")])
        expect(result.locator(".still-restricted")).to_have_count(0)
        for scope in ("global", "client demo", "venue paper-bybit"):
            assert trading_state(server, scope) == "active", scope
        expect(page.locator("#banner")).to_have_class(ACTIVE)
        assert _audited(server, page, "everything back") == [
            "client demo", "global", "venue paper-bybit"]
    finally:
        _reset(server)
