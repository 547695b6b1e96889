"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served entirely from this server.

FastAPI's built-in pages load their bundles from a CDN, so offline (or behind a
proxy that blocks it) ``/docs`` is blank. Here the bundles are vendored under
``/static/vendor`` (``scripts/vendor_assets.py`` pins and fetches them) and the
pages reference nothing else:

* ``/docs`` is our own small page: the Swagger UI bundle plus an external start
  script (``/static/docs/swagger-init.js``) that reads the OpenAPI URL from a
  ``data-`` attribute. No inline script, so the docs policy keeps
  ``script-src 'self'`` (``app/api/security_headers.py``).
* ``/redoc`` is FastAPI's ``get_redoc_html`` without Google fonts: a ``<redoc>``
  element that the bundle starts by itself (no inline script either).
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

VENDOR = "/static/vendor"
SWAGGER_JS = f"{VENDOR}/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = f"{VENDOR}/swagger-ui/swagger-ui.css"
SWAGGER_FAVICON = f"{VENDOR}/swagger-ui/favicon-32x32.png"
SWAGGER_INIT = "/static/docs/swagger-init.js"
REDOC_JS = f"{VENDOR}/redoc/redoc.standalone.js"

_SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{css}">
<link rel="icon" type="image/png" href="{favicon}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{js}"></script>
<script src="{init}"></script>
</body>
</html>
"""


def _urls(request: Request) -> tuple[str, str]:
    """The path prefix the app is mounted at (behind a proxy) and its OpenAPI URL."""
    root = request.scope.get("root_path", "").rstrip("/")
    return root, root + (request.app.openapi_url or "/openapi.json")


def swagger_ui_html(request: Request) -> str:
    """The Swagger UI page: vendored bundle, external start script, no inline code."""
    root, openapi = _urls(request)
    return _SWAGGER_PAGE.format(
        title=escape(f"{request.app.title} — API docs"), css=escape(root + SWAGGER_CSS),
        favicon=escape(root + SWAGGER_FAVICON), openapi=escape(openapi),
        js=escape(root + SWAGGER_JS), init=escape(root + SWAGGER_INIT))


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI: the operations, with "try it out" against this server."""
    return HTMLResponse(swagger_ui_html(request))


@router.get("/redoc", response_class=HTMLResponse)
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc: the API reference as one readable page."""
    root, openapi = _urls(request)
    return get_redoc_html(openapi_url=openapi, title=f"{request.app.title} — API reference",
                          redoc_js_url=root + REDOC_JS, redoc_favicon_url=root + SWAGGER_FAVICON,
                          with_google_fonts=False)
