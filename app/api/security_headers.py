"""Browser hardening headers on every HTTP response.

* ``Content-Security-Policy``: everything from this origin only. Scripts come
  from ``/static`` files, never inline (no ``<script>`` with code, no ``on*=``
  attributes, no ``hx-on``, no ``eval``): an injected tag or attribute does not
  run. The dashboard's WebSocket is allowed explicitly (``ws:``/``wss:`` to the
  request's own host) besides ``'self'``. Styles too come from ``/static`` only:
  the pages have no inline ``style``, and htmx's inline indicator ``<style>`` is
  turned off in base.html (``includeIndicatorStyles: false``; app.css has the
  rules instead). The one ``<script>`` element in the pages, the equity data
  island, is ``type="application/json"``: data, never run, so no policy
  applies to it. ``data:`` images are allowed for the inline (empty) favicon.
  ``frame-ancestors 'none'`` (and ``X-Frame-Options: DENY`` for old browsers):
  no page, the kill-switch panel least of all, can be framed and clickjacked.
* ``/docs`` and ``/redoc`` (Swagger UI and ReDoc, ``app/api/docs.py``) load
  vendored bundles from ``/static`` and run no inline script; their policy
  (``DOCS_POLICY``) is the main one plus what ReDoc needs: inline styles (it
  styles itself with injected ``<style>`` elements) and a ``blob:`` worker (its
  search index). Nothing from another origin: no CDN, no Google fonts.
* ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``
  (order ids and filters in URLs stay here).
* ``Cache-Control: no-store`` on everything but ``/static``: pages and API
  answers hold account data, which must not stay in a browser's or a proxy's
  cache after logout. Static files (versioned vendor bundles, app.js/css) stay
  cacheable.

A header the application already set on a response is left as it is. The
``Secure`` flag of the session cookie is ``PERPDESK_SECURE_COOKIES``
(``Settings.secure_cookies``): turn it on whenever the server is reached over
HTTPS (Starlette's session middleware cannot decide it per request).
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAIN_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
               "img-src 'self' data:; font-src 'self'; object-src 'none'; "
               "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
DOCS_POLICY = ("default-src 'self'; script-src 'self'; "
               # ReDoc (styled-components) injects <style> elements; Swagger UI alone
               # would run under style-src 'self'. Styles only: scripts stay 'self'.
               "style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; font-src 'self'; "
               # ReDoc's search index runs in a worker made from a blob: URL.
               "worker-src 'self' blob:; "
               "connect-src 'self'; object-src 'none'; "
               "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
DOCS_PATHS = frozenset({"/docs", "/redoc"})
STATIC_PREFIX = "/static/"

# A Host header that can go into the policy as it is: a name or an IPv4/IPv6 address,
# and a port. Anything else gets 'self' alone (never reflect arbitrary text).
_HOST = re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
_FIXED = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
          (b"referrer-policy", b"no-referrer")]
_NO_STORE = (b"cache-control", b"no-store")
_MAX_CACHED_HOSTS = 64


class SecurityHeaders:
    """Pure ASGI middleware (cheap on the order path: a few header tuples added to the
    response start, the policy string cached per host)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._policies: dict[bytes, bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = list(_FIXED)
        extra.append((b"content-security-policy",
                      DOCS_POLICY.encode() if path in DOCS_PATHS else self._policy(scope)))
        if not path.startswith(STATIC_PREFIX):
            extra.append(_NO_STORE)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _policy(self, scope: Scope) -> bytes:
        """The main policy, with ``ws:``/``wss:`` to the host the browser asked for."""
        host = next((value for name, value in scope["headers"] if name == b"host"), b"")
        policy = self._policies.get(host)
        if policy is None:
            text = host.decode("latin-1")
            sockets = f" ws://{text} wss://{text}" if _HOST.fullmatch(text) else ""
            policy = f"{MAIN_POLICY}; connect-src 'self'{sockets}".encode()
            if len(self._policies) >= _MAX_CACHED_HOSTS:
                self._policies.clear()  # a flood of made-up hosts cannot grow it
            self._policies[host] = policy
        return policy
