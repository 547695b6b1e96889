"""How events become messages for scripts and dashboards."""

from __future__ import annotations

from typing import Any

from app.store.event_log import Recorded

TOPICS = frozenset({"orders", "fills", "positions", "portfolio", "trades", "funding",
                    "balances", "trading_states", "alerts", "strategies", "risk", "arb",
                    "signals", "backtests"})

_TOPIC_BY_EVENT = {
    "OrderFilled": "fills",
    "TradeClosed": "trades",
    "FundingApplied": "funding",
    "FundingSettled": "funding",
    "FundingRateMissing": "funding",
    "LeverageChanged": "balances",
    "PositionLiquidated": "positions",
    "FundsDeposited": "balances",
    "FundsWithdrawn": "balances",
    "TradingStateChanged": "trading_states",
    "CloseAllCompleted": "trading_states",
    "StrategyCreated": "strategies",
    "ArbTradeUpdated": "arb",
    "LegOutDetected": "arb",
    "StrategyStarted": "strategies",
    "StrategyStopped": "strategies",
    "StrategyConfigured": "strategies",
    "StrategyBarsRecorded": "strategies",
    "RiskProfileChanged": "risk",
    "BreakerTripped": "risk",
    "BreakerReset": "risk",
    "RiskStateRecorded": "risk",
    "OrderSizedDown": "risk",
    "MarginWindowChanged": "risk",
    "MarginWindowWarning": "risk",
    "SignalReceived": "signals",
    "SignalResolved": "signals",
    "SignalParamsChanged": "signals",
    "BracketOpened": "signals",
    "BracketLegsPlaced": "signals",
    "BracketClosed": "signals",
}


def topic_of(type_name: str) -> str:
    return _TOPIC_BY_EVENT.get(type_name, "orders")


def record_message(record: Recorded) -> dict[str, Any]:
    """A committed event as sockets receive it (its payload as the log encoded it)."""
    return {"seq": record.seq, "topic": topic_of(record.type), "type": record.type,
            "client": record.client, "data": record.payload}


def position_message(seq: int, position: Any, mark: Any) -> dict[str, Any]:
    """Live state (not an event): the position after the batch that changed it."""
    from app.store.codec import encode

    unrealized = position.unrealized_pnl(mark) if mark is not None else None
    return {"seq": seq, "derived": True, "topic": "positions", "type": "PositionUpdated",
            "client": position.client,
            "data": {**encode(position), "mark": encode(mark),
                     "unrealized_pnl": encode(unrealized)}}


def account_message(seq: int, summary: Any) -> dict[str, Any]:
    """Live state (not an event): an account's valuation after a batch changed it."""
    from app.store.codec import encode

    return {"seq": seq, "derived": True, "topic": "portfolio", "type": "AccountUpdated",
            "client": summary.client, "data": encode(summary)}


def visible_to(message: dict[str, Any], clients: frozenset[str] | None
               ) -> dict[str, Any] | None:
    """The message as a reader limited to ``clients`` may see it, or None.

    Messages about another client are hidden. Global ones (no client) are
    shown — a global kill switch concerns everyone — but a global close-all's
    per-position results are cut down to the reader's own clients.
    """
    if clients is None:
        return message
    client = message.get("client")
    if client is not None:
        return message if client in clients else None
    if message.get("type") == "CloseAllCompleted":
        data = dict(message["data"])
        data["results"] = [r for r in data.get("results", []) if r.get("client") in clients]
        return {**message, "data": data}
    return message
