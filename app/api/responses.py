"""JSON responses rendered with orjson from plain JSON-ready data.

Endpoints on the order path return these directly: FastAPI then skips
validating the result against the documented ``response_model`` (which stays
for the OpenAPI schema) — a second pass over every order that cost as much as
placing it.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class OrjsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(content: Any, status_code: int = 200) -> Response:
    return OrjsonResponse(content, status_code=status_code)
