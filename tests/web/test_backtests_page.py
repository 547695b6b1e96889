"""The Backtests page in a real browser: an operator starts a run from the form, sees
it progress and finish in the live list (pushed, no reload) and opens its report,
whose charts draw; a viewer sees the list and the reports but no form.

The server reads its bar files from a data directory of this module's own
(``PERPDESK_BACKTEST_DATA_DIR``): the first 2,000 bars of the real BTC-PERP month.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pytest
from browser_support import Server, login, wait_live
from playwright.sync_api import Page, expect

SOURCE = Path("/work/shared/data/btc-perp-2022-01_1m.csv")
DATASET = "btc-2000.csv"
RUN_TIMEOUT_MS = 120_000  # a bound on a hung run, not a timing assertion


@pytest.fixture(scope="module")
def bt_server(template_db, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not SOURCE.exists():
        pytest.skip(f"{SOURCE} is not here")
    data = tmp_path_factory.mktemp("backtest-data")
    with SOURCE.open() as f:
        (data / DATASET).write_text("".join(islice(f, 2_001)))
    db = template_db.copy_to(tmp_path_factory.mktemp("web-backtests"))
    srv = Server(db, template_db.api_key, extra_env={"PERPDESK_BACKTEST_DATA_DIR": str(data)})
    srv.start()
    yield srv
    srv.close()


def test_an_operator_runs_a_backtest_and_opens_its_report(page: Page, bt_server: Server
                                                          ) -> None:
    login(page, bt_server, "op", "/backtests")
    wait_live(page)
    expect(page.locator("nav a[aria-current=page]")).to_have_text("Backtests")
    page.evaluate("window.__notReloaded = true")
    form = page.locator("#backtest-form")
    form.locator("select[name=strategy]").select_option("ma_crossover")
    form.locator("select[name=dataset]").select_option(DATASET)
    form.locator("textarea[name=params]").fill("fast_period=5\nslow_period=20")
    form.locator("input[name=maker_bps]").fill("2")
    form.locator("input[name=taker_bps]").fill("5")
    form.get_by_role("button", name="Run backtest").click()
    expect(page.locator("#backtest-form .toast-ok")).to_contain_text("queued: ma_crossover")
    run_id = page.locator("#backtest-form .toast-ok").inner_text().split()[1]

    row = page.locator(f'#backtests tr[data-backtest="{run_id}"]')
    expect(row).to_be_visible()
    expect(row).to_have_attribute("data-status", "done", timeout=RUN_TIMEOUT_MS)
    expect(row.locator("progress")).to_have_attribute("value", "100")
    expect(row).to_contain_text("2,000/2,000 bars")
    assert page.evaluate("window.__notReloaded") is True  # it came by push

    status, run = bt_server.api("GET", f"/backtests/{run_id}")
    assert status == 200 and run["status"] == "done"
    assert run["params"]["fast_period"] == 5 and run["fees"]["taker_bps"] == "5"
    assert run["requested_by"].endswith("op")

    with page.context.expect_page() as opened:
        row.get_by_role("link", name="report").click()
    report = opened.value
    report.wait_for_function("window.reportReady === true", timeout=RUN_TIMEOUT_MS)
    expect(report).to_have_title("Backtest: ma_crossover on BTC-PERP")
    assert report.locator("canvas").count() > 0
    assert not page.js_errors  # type: ignore[attr-defined]


def test_the_form_shows_a_refusal_next_to_the_field(page: Page, bt_server: Server) -> None:
    login(page, bt_server, "op", "/backtests")
    form = page.locator("#backtest-form")
    form.locator("textarea[name=params]").fill("fast_period=soon")
    form.get_by_role("button", name="Run backtest").click()
    expect(page.locator('#backtest-form .field-error[data-field="params"]')).to_contain_text(
        "INVALID_PARAMS")
    # What was typed stays, to be corrected.
    expect(page.locator("#backtest-form textarea[name=params]")).to_have_value(
        "fast_period=soon")


def test_a_viewer_sees_the_runs_but_no_form(page: Page, bt_server: Server) -> None:
    login(page, bt_server, "viewer", "/backtests")
    expect(page.locator("#backtests")).to_be_visible()
    expect(page.locator("#backtest-form")).to_have_count(0)
