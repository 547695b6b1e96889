"""/api/v1/strategies: strategies on the host (reads: viewer; changes: operator).

Create a strategy from a registered kind with parameters (validated by the kind:
422 ``INVALID_PARAMS`` names the field), start it, stop it, change its
parameters. Every change is audited with who, why and what, and each call is
idempotent (starting what runs changes nothing and says so).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from app.api.deps import Operator, Reads, System
from app.api.inputs import NAME_PATTERN, Name, Reason
from app.api.openapi import Responses
from app.api.schemas import Strict
from app.domain.strategies import StrategyRecord
from app.services import strategies
from app.services.strategies import params_dict

router = APIRouter(prefix="/strategies", tags=["strategies"])

StrategyId = Annotated[str, Field(min_length=1, max_length=64,
                                  pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
StrategyIdPath = Annotated[str, Path(min_length=1, max_length=64,
                                     pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
# A parameter's value: a plain JSON value, bounded (the kind validates the rest).
ParamValue = (Annotated[str, Field(max_length=200)] | int | bool | None
              | Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=50)])
ParamsIn = Annotated[dict[Annotated[str, Field(max_length=64, pattern=NAME_PATTERN)],
                          ParamValue], Field(max_length=64)]


class StrategyCreate(Strict):
    kind: Name
    client: Name
    venue: Name
    params: ParamsIn = Field(default_factory=dict)
    id: StrategyId | None = None
    start: bool = False
    reason: Reason | None = None


class StrategyConfig(Strict):
    params: ParamsIn
    reason: Reason | None = None


class StrategyAction(Strict):
    reason: Reason | None = None


class StrategyPublic(BaseModel):
    id: str
    kind: str
    client: str
    venue: str
    status: str
    status_reason: str
    params: dict[str, Any]
    created_at: datetime
    updated_at: datetime | None


class StrategyKindPublic(BaseModel):
    name: str
    description: str
    params: dict[str, Any]  # the JSON schema of its parameters


def strategy_json(r: StrategyRecord) -> dict[str, Any]:
    return {"id": r.strategy_id, "kind": r.kind, "client": r.client, "venue": r.venue,
            "status": r.status.value, "status_reason": r.status_reason,
            "params": params_dict(r.params), "created_at": r.created_at,
            "updated_at": r.updated_at}


ERRORS: Responses = {404: {"description": "no such strategy, kind, client or venue"},
                     422: {"description": "parameters the kind refuses (INVALID_PARAMS)"}}


@router.get("", response_model=list[StrategyPublic], summary="Strategies, by id")
async def list_strategies(reader: Reads) -> list[dict[str, Any]]:
    return [strategy_json(r) for r in strategies.strategies(reader.system, reader.principal)]


@router.get("/kinds", response_model=list[StrategyKindPublic],
            summary="The strategy kinds and their parameters")
async def list_kinds(reader: Reads) -> list[dict[str, Any]]:
    return [{"name": k.name, "description": k.description,
             "params": k.params.model_json_schema()} for k in strategies.kinds().values()]


@router.get("/{strategy_id}", response_model=StrategyPublic, responses=ERRORS,
            summary="One strategy")
async def get_strategy(strategy_id: StrategyIdPath, reader: Reads) -> dict[str, Any]:
    return strategy_json(strategies.strategy(reader.system, reader.principal, strategy_id))


@router.post("", status_code=201, response_model=StrategyPublic, responses=ERRORS,
             summary="Create a strategy from a registered kind")
async def create_strategy(body: StrategyCreate, principal: Operator, system: System
                          ) -> dict[str, Any]:
    record = await strategies.create(system, principal, body.kind, body.client, body.venue,
                                     body.params, body.id, body.start, body.reason or "")
    return strategy_json(record)


@router.post("/{strategy_id}/start", response_model=StrategyPublic, responses=ERRORS,
             summary="Start a strategy (idempotent)")
async def start_strategy(strategy_id: StrategyIdPath, principal: Operator, system: System,
                         body: StrategyAction | None = None) -> dict[str, Any]:
    return strategy_json(await strategies.start(system, principal, strategy_id,
                                                _reason(body)))


@router.post("/{strategy_id}/stop", response_model=StrategyPublic, responses=ERRORS,
             summary="Stop a strategy (idempotent; it may cancel its orders)")
async def stop_strategy(strategy_id: StrategyIdPath, principal: Operator, system: System,
                        body: StrategyAction | None = None) -> dict[str, Any]:
    return strategy_json(await strategies.stop(system, principal, strategy_id,
                                               _reason(body)))


def _reason(body: StrategyAction | None) -> str:
    """The optional body's reason, for the audit log ("" without one)."""
    return body.reason if body is not None and body.reason else ""


@router.put("/{strategy_id}/config", response_model=StrategyPublic, responses=ERRORS,
            summary="Replace a strategy's parameters")
async def configure_strategy(strategy_id: StrategyIdPath, body: StrategyConfig,
                             principal: Operator, system: System) -> dict[str, Any]:
    return strategy_json(await strategies.configure(system, principal, strategy_id,
                                                    body.params, body.reason or ""))
