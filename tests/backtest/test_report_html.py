"""``report.html`` of ``perpdesk backtest``: self-contained (no network), and in real
Chromium (Debian's, never a downloaded one) its three charts are drawn, without a
JavaScript error; the monthly returns, metrics and parameters tables are there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from app.backtest.html import (
    MAX_CHART_POINTS,
    _column_series,
    _drawdown_series,
    bucket_seconds,
    monthly_returns,
)
from app.backtest.report import write_report
from app.backtest.runner import BacktestConfig, run_backtest
from app.domain.analytics import EquityPoint
from tests.backtest.test_backtest_runs import MA, head


def test_monthly_returns_chain_month_ends() -> None:
    def at(m: int, d: int) -> datetime:
        return datetime(2022, m, d, tzinfo=UTC)
    curve = [EquityPoint(at(1, 1), Decimal(100)), EquityPoint(at(1, 31), Decimal(110)),
             EquityPoint(at(2, 15), Decimal(99)), EquityPoint(at(3, 2), Decimal(99))]
    [row] = monthly_returns(curve)
    assert row["year"] == 2022
    assert row["months"][:3] == [Decimal(10), Decimal(-10), Decimal(0)]
    assert row["months"][3:] == [None] * 9
    assert row["total"] == Decimal(-1)


def test_long_runs_are_bucketed_for_the_charts() -> None:
    """A million minutes would make a page of millions of points: the charts get at most
    about MAX_CHART_POINTS, each bucket's last equity and its deepest drawdown."""
    start = datetime(2022, 1, 1, tzinfo=UTC)
    assert bucket_seconds(start, start + timedelta(minutes=2000)) == 60
    assert bucket_seconds(start, start + timedelta(seconds=100)) == 1
    end = start + timedelta(minutes=1_000_000)
    width = bucket_seconds(start, end)
    assert width % 60 == 0 and (end - start).total_seconds() / width <= MAX_CHART_POINTS
    minutes = [start + timedelta(minutes=i) for i in range(120)]
    drawdown = [Decimal(50 if i in (10, 70) else 5) for i in range(120)]
    assert [p["value"] for p in _drawdown_series(minutes, drawdown, 3600)] == ["-50", "-50"]
    equity = [Decimal(i) for i in range(120)]
    assert [p["value"] for p in _column_series(minutes, equity, 3600)] == ["59", "119"]
    assert [p["time"] for p in _column_series(minutes, equity, 3600)] == [
        int(start.timestamp()), int(start.timestamp()) + 3600]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    result = run_backtest(BacktestConfig("ma_crossover", head(tmp, 2000), params=MA))
    assert result.trades and len(result.candles) == 2000
    return write_report(result, tmp / "report") / "report.html"


def test_report_is_self_contained(report: Path) -> None:
    text = report.read_text()
    assert "<script src" not in text and "<link" not in text
    assert "http://" not in text.replace("http://www.w3.org", "")
    assert 'id="monthly"' in text and 'id="metrics"' in text and 'id="params"' in text
    assert "fast_period" in text and "sharpe" in text


def test_report_charts_draw_in_chromium(report: Path) -> None:
    from tests.web.browser_support import CHROMIUM, CHROMIUM_ARGS  # skips without a browser

    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri())
            page.wait_for_function("window.reportReady === true", timeout=15_000)
            page.wait_for_timeout(500)  # the charts paint on the next animation frame
            colours = page.evaluate("""() => ['equity-chart', 'drawdown-chart', 'price-chart']
              .map(id => {
                const seen = new Set();
                for (const c of document.querySelectorAll('#' + id + ' canvas')) {
                  if (!c.width || !c.height) continue;
                  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  for (let i = 0; i < px.length; i += 4 * 7)
                    seen.add((px[i] << 24) | (px[i + 1] << 16) | (px[i + 2] << 8) | px[i + 3]);
                }
                return seen.size;
              })""")
        finally:
            browser.close()
    assert errors == []
    assert all(u.startswith("file://") for u in requests), requests
    assert all(n > 2 for n in colours), colours  # each chart has drawn more than its ground
