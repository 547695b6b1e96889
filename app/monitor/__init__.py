"""The terminal monitor (``perpdesk monitor``).

Layers: ``model`` (REST JSON → plain values, metrics, formatting; pure),
``render`` (plain values → rich renderables; pure), ``live`` (HTTP,
WebSocket, the Live display) and ``cli`` (arguments).
"""

from app.monitor.cli import add_parser, main, run

__all__ = ["add_parser", "main", "run"]
