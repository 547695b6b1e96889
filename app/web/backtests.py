"""The Backtests page: a form that starts a run (``services.backtests``, the same
use case as ``POST /api/v1/backtests``) and the live list of runs (the
``backtests`` fragment, pushed by the hub as progress comes in), each finished run
linking to its report (``GET /api/v1/backtests/{id}/report``).

Starting a run needs an operator's session and the CSRF token, like every
dashboard action; viewers see the list and the reports.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from app.api.backtests import BacktestCreate, request_of
from app.api.errors import ApiError
from app.auth.principal import Principal, Role
from app.services.backtests import (
    BACKTEST_KINDS,
    VENUES,
    BacktestService,
    parse_params_text,
    symbols_on,
)
from app.web.routes import _actor, _error_fragment, _page, _system, session_principal, templates

router = APIRouter(include_in_schema=False)
FORM_FIELDS = ("strategy", "dataset", "funding_dataset", "signals_dataset", "symbol", "venue",
               "maker_bps", "taker_bps", "params", "run_id")


def _service(request: Request) -> BacktestService:
    service = _system(request).backtests
    if service is None:
        raise ApiError(503, "BACKTESTS_UNAVAILABLE", "backtests are not running on this server")
    return service


async def _form_context(request: Request) -> dict[str, Any]:
    datasets = await _service(request).datasets()
    return {"kinds": BACKTEST_KINDS, "datasets": [d.name for d in datasets if d.bars],
            "funding": [d.name for d in datasets if not d.bars and not d.signals],
            "signals": [d.name for d in datasets if d.signals], "bt_venues": VENUES,
            "bt_symbols": symbols_on(VENUES[0]), "run_id": _new_form_id()}


def _new_form_id() -> str:
    return f"ui-{secrets.token_hex(6)}"


@router.get("/backtests", response_class=HTMLResponse)
async def backtests_page(request: Request) -> Response:
    if session_principal(request) is None:
        return _page(request, "backtests.html", "backtests")  # the login redirect
    return _page(request, "backtests.html", "backtests", errors={}, values={}, result=None,
                 **await _form_context(request))


@router.post("/ui/backtests", response_class=HTMLResponse)
async def start_backtest(request: Request) -> Response:
    try:
        principal = _actor(request, Role.OPERATOR)
    except ApiError as exc:
        return _error_fragment(exc.message, exc.status)
    form = await request.form()
    values = {k: str(form.get(k, "")).strip() for k in FORM_FIELDS}
    errors: dict[str, str] = {}
    result = None
    status = 200
    try:
        run, created = await _submit(principal, values, _service(request))
        what = run.request.strategy or f"signals {run.request.signals_dataset}"
        result = {"level": "ok", "message": f"Backtest {run.run_id} queued: {what}"
                  f" on {run.request.dataset}" if created else
                  f"Backtest {run.run_id} was already started"}
    except ValueError as exc:  # the parameters box (pydantic's ValidationError is one too)
        status = 422
        if isinstance(exc, ValidationError):
            for e in exc.errors():
                errors.setdefault(".".join(str(p) for p in e["loc"]) or "form", e["msg"])
        else:
            errors["params"] = f"parameters: {exc}"
    except ApiError as exc:
        status = exc.status
        field = str(exc.details.get("field", "form")).split(".")[0]
        shown = field in FORM_FIELDS and field != "run_id"  # the id is a hidden field
        errors[field if shown else "form"] = f"{exc.code}: {exc.message}"
    ctx = await _form_context(request)
    if errors and "BACKTEST_ID_REUSED" not in errors.get("form", ""):
        # Everything typed stays, to be corrected, with the same id: still one run.
        ctx["run_id"] = values["run_id"] or ctx["run_id"]
    kept = values if errors else {k: v for k, v in values.items() if k != "run_id"}
    return templates.TemplateResponse(request, "fragments/backtest_form.html",
                                      {**ctx, "errors": errors, "values": kept,
                                       "result": result}, status_code=status)


async def _submit(principal: Principal, values: dict[str, str], service: BacktestService
                  ) -> Any:
    """The form as the API's body (the same bounds), then the API's use case."""
    raw: dict[str, Any] = {k: values[k] for k in ("strategy", "dataset", "symbol", "venue")
                           if values[k]}
    raw["params"] = parse_params_text(values["params"])
    for name in ("funding_dataset", "signals_dataset"):
        if values[name]:
            raw[name] = values[name]
    fees = {k: values[k] for k in ("maker_bps", "taker_bps") if values[k]}
    if fees:
        raw["fees"] = fees
    if values["run_id"]:
        raw["run_id"] = values["run_id"]
    return await service.submit(principal, request_of(BacktestCreate.model_validate(raw)))
