"""Browser hardening: security headers on every response, pages that need no inline
script or style (so the Content-Security-Policy can forbid them), and the session
cookie's Secure flag."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from app.api.security_headers import DOCS_PATHS
from app.auth.principal import Role

PASSWORD = "op-password-123"
PAGES = ("/", "/controls", "/orders", "/positions", "/trades", "/audit")
FIXED = {"x-frame-options": "DENY", "x-content-type-options": "nosniff",
         "referrer-policy": "no-referrer"}


def policy(response) -> dict[str, list[str]]:
    """The Content-Security-Policy as {directive: [sources]}."""
    header = response.headers.get("content-security-policy")
    assert header, f"no CSP on {response.request.url}"
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in out, f"{name} twice in {header}"
        out[name] = sources
    return out


def assert_hardened(response, *, cached: bool = False) -> dict[str, list[str]]:
    for name, value in FIXED.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    no_store = response.headers.get("cache-control") == "no-store"
    assert no_store is not cached, (response.request.url, response.headers.get("cache-control"))
    return policy(response)


def assert_main_policy(csp: dict[str, list[str]], host: str = "testserver") -> None:
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]  # no inline script, no eval, no CDN
    assert csp["style-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["connect-src"] == ["'self'", f"ws://{host}", f"wss://{host}"]


def login(api, name: str = "op", role: Role = Role.OPERATOR, clients: str = ""):
    api.auth.add_user(name, role, PASSWORD, clients=clients)
    r = api.client.post("/login", data={"name": name, "password": PASSWORD, "next": "/"},
                        follow_redirects=False)
    assert r.status_code == 303, r.text
    return r


# ---- the headers ---------------------------------------------------------------------------

def test_pages_carry_the_main_policy_and_are_not_cached(api):
    assert_main_policy(assert_hardened(api.get("/login", None)))
    redirect = api.client.get("/", follow_redirects=False)  # not logged in: to /login
    assert redirect.status_code == 303
    assert_main_policy(assert_hardened(redirect))
    login(api)
    for path in PAGES:
        r = api.client.get(path)
        assert r.status_code == 200, (path, r.status_code)
        assert_main_policy(assert_hardened(r))


@pytest.mark.parametrize("request_", [
    ("GET", "/api/v1/markets", "viewer", None),
    ("GET", "/api/v1/markets", None, None),                    # 401
    ("GET", "/api/v1/orders/999999", "viewer", None),          # 404
    ("POST", "/api/v1/orders", "trader", {"client": "demo"}),  # 422, through the order lane
    ("GET", "/healthz", None, None),
    ("GET", "/metrics", None, None),
    ("GET", "/openapi.json", None, None),
], ids=lambda r: f"{r[0]} {r[1]} {r[2]}")
def test_api_answers_carry_the_headers_and_are_not_cached(api, request_):
    method, path, who, body = request_
    r = api.request(method, path, who, json=body) if body else api.request(method, path, who)
    assert_main_policy(assert_hardened(r))


def test_an_accepted_order_through_the_order_lane_carries_the_headers(market_api):
    r = market_api.order()
    assert r.status_code == 201, r.text
    assert_main_policy(assert_hardened(r))


def test_a_body_over_the_cap_gets_413_with_the_headers(make_api):
    api = make_api(max_body_bytes=100)
    r = api.post("/api/v1/orders", "trader", content=b"x" * 1000,
                 headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert_main_policy(assert_hardened(r))


def test_static_files_are_hardened_but_cacheable(api):
    for path in ("/static/app.css", "/static/app.js",
                 "/static/vendor/htmx/htmx.min.js"):
        r = api.get(path, None)
        assert r.status_code == 200, path
        assert_main_policy(assert_hardened(r, cached=True))


@pytest.mark.parametrize("path", sorted(DOCS_PATHS))
def test_docs_are_served_from_here_under_a_policy_without_inline_script(api, path):
    r = api.get(path, None)
    assert r.status_code == 200
    csp = assert_hardened(r)
    # Swagger UI and ReDoc are vendored under /static and run no inline script: scripts,
    # images, fonts and requests are this server's only (no CDN, no Google fonts)...
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["img-src"] == ["'self'", "data:"]
    assert csp["font-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    # ...ReDoc needs inline styles and a blob: worker (its search index), nothing more...
    assert csp["style-src"] == ["'self'", "'unsafe-inline'"]
    assert csp["worker-src"] == ["'self'", "blob:"]
    # ...and nothing else loosens: no framing, no plugins, no foreign forms or base.
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"] and csp["form-action"] == ["'self'"]
    assert "https:" not in r.headers["content-security-policy"]
    page = ScriptsAndStyles.of(r.text)
    assert page.inline_scripts == []
    assert page.handlers == []
    assert page.script_srcs and all(src.startswith("/static/") for src in page.script_srcs)
    for src in page.script_srcs:  # and every one of them is there
        assert api.get(src, None).status_code == 200, src
    assert "http://" not in r.text and "https://" not in r.text


def test_the_policy_allows_websockets_to_the_requested_host_only(api):
    r = api.client.get("/login", headers={"host": "desk.example.com:8443"})
    assert_main_policy(policy(r), host="desk.example.com:8443")
    # A Host that is not a plain host[:port] is never copied into the header.
    for host in (b"evil.example; script-src *", b"a b", b"x'", "\u00e9.example".encode()):
        r = api.client.get("/login", headers={b"host": host})
        assert policy(r)["connect-src"] == ["'self'"], host
        assert policy(r)["script-src"] == ["'self'"]


def test_a_header_the_application_set_is_kept(api):
    # The CSV export sets its own Content-Disposition; the hardening adds, never replaces.
    login(api)
    r = api.client.get("/trades.csv")
    assert r.status_code == 200
    assert r.headers["content-disposition"] == "attachment; filename=trades.csv"
    assert [k for k in r.headers.raw if k[0].lower() == b"cache-control"] == [
        (b"cache-control", b"no-store")]


# ---- pages that run under that policy -------------------------------------------------------

class ScriptsAndStyles(HTMLParser):
    """What in a page the CSP would refuse: inline scripts with code, event-handler and
    ``hx-on`` attributes, inline styles; plus the external scripts and the htmx config."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts: list[str] = []
        self.script_srcs: list[str] = []
        self.handlers: list[str] = []
        self.styles: list[str] = []
        self.htmx_config: str | None = None
        self._script: dict[str, str | None] | None = None

    @classmethod
    def of(cls, html: str) -> ScriptsAndStyles:
        parser = cls()
        parser.feed(html)
        parser.close()
        return parser

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name.startswith("hx-on") or name == "hx-vals":
                self.handlers.append(f"<{tag} {name}>")
            if name == "style":
                self.styles.append(f"<{tag} style>")
            if name in ("href", "src", "action", "hx-get", "hx-post") and (
                    a[name] or "").strip().lower().startswith("javascript:"):
                self.handlers.append(f"<{tag} {name}=javascript:>")
        if tag == "style":
            self.styles.append("<style>")
        if tag == "script":
            self._script = a
            if a.get("src"):
                self.script_srcs.append(a["src"] or "")
        if tag == "meta" and a.get("name") == "htmx-config":
            self.htmx_config = a.get("content")

    def handle_data(self, data: str) -> None:
        if self._script is not None and not self._script.get("src") and data.strip() and (
                self._script.get("type") != "application/json"):
            self.inline_scripts.append(data.strip()[:80])

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None


@pytest.mark.parametrize("who,clients", [("operator", ""), ("viewer", ""),
                                         ("trader", "demo")])
def test_pages_have_no_inline_script_handler_or_style(market_api, who, clients):
    api = market_api
    api.buy_market()  # something in every table: positions, orders, trades
    api.place(price="59000.0")
    login(api, name=f"u-{who}", role=Role(who), clients=clients)
    for path in (*PAGES, "/orders?status=open", "/login"):
        r = api.client.get(path)
        assert r.status_code == 200, path
        page = ScriptsAndStyles.of(r.text)
        assert page.inline_scripts == [], (path, page.inline_scripts)
        assert page.handlers == [], (path, page.handlers)
        assert page.styles == [], (path, page.styles)
        assert all(src.startswith("/static/") for src in page.script_srcs), page.script_srcs
        if path != "/login":
            assert page.htmx_config is not None, path
            assert '"includeIndicatorStyles": false' in page.htmx_config


def test_the_equity_data_island_cannot_close_its_script_element(api):
    from app.web.routes import templates

    html = templates.get_template("fragments/equity.html").render(
        oob=False, series='[{"time": 1, "value": "</script><script>alert(1)</script>"}]')
    page = ScriptsAndStyles.of(html)
    assert page.inline_scripts == [] and html.count("</script>") == 1


# ---- the session cookie ---------------------------------------------------------------------

@pytest.mark.parametrize("secure", [False, True])
def test_the_session_cookie_is_secure_when_configured(make_api, secure):
    """``PERPDESK_SECURE_COOKIES=1`` (behind HTTPS): the cookie is never sent in clear."""
    api = make_api(secure_cookies=secure)
    r = login(api)
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie"
                  and v.startswith("perpdesk_session="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert ("secure" in flags) is secure, cookie
    assert "httponly" in flags and "samesite=strict" in flags, cookie
