"""Every failure answers in the one error shape, an unexpected one too: a 500 with a
request id that the log carries as well, and the security headers."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from app.auth.principal import Role
from app.server import create_app
from tests.api.conftest import api_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def test_a_bug_is_a_500_in_the_error_shape_with_a_logged_request_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import app.api.portfolio as portfolio

    def broken(*_: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(portfolio, "_summary_json", broken)
    app = create_app(api_settings(tmp_path / "perpdesk.db"))
    with TestClient(app, raise_server_exceptions=False) as client, \
            caplog.at_level(logging.ERROR):
        key = app.state.auth.create_key(Role.VIEWER, name="v")
        r = client.get("/api/v1/balances", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["code"] == "INTERNAL_ERROR"
    request_id = error["details"]["request_id"]
    assert r.headers["X-Request-ID"] == request_id and request_id in error["message"]
    assert "a bug" not in r.text  # the details stay in the log
    assert any(request_id in rec.getMessage() for rec in caplog.records)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/api/v1/nothing-here", 404, "NOT_FOUND"),
    ("PUT", "/api/v1/orders", 405, "METHOD_NOT_ALLOWED"),
    ("GET", "/api/v1/orders", 401, "UNAUTHENTICATED"),
])
def test_framework_errors_use_the_error_shape(api, method: str, path: str, status: int,
                                              code: str) -> None:
    r = api.request(method, path, None)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
