"""The dashboard as one FastAPI app: pages, /api/v1, /metrics and /login behind one token gate.

Safe by default: every path but /login, /logout, /static and /healthz needs the token (and /metrics
too, unless `metrics_open`), by header or session cookie only, never in a URL; pages send a strict
Content-Security-Policy (scripts and styles only from /static, so an escaped-but-missed string still
cannot run); templates autoescape; page data goes into `<script type="application/json">` through
`tojson`, which escapes `<`, `>`, `&` and quotes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from clusterctl import __version__
from clusterctl.dashboard import api, checks, rollout
from clusterctl.dashboard.auth import COOKIE, SESSION_S, Token, is_loopback
from clusterctl.dashboard.views import NotFound, ReadModel
from clusterctl.errors import StateError

if TYPE_CHECKING:
    from clusterctl.inventory.site import Inventory
    from clusterctl.state.store import Store

HERE = Path(__file__).resolve().parent
OPEN_PATHS = ("/login", "/logout", "/healthz", "/favicon.ico")
LOGIN_FORM_MAX = 4096  # bytes: a token and a path; /login is open, so a bigger body is refused unread
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # node and rack names in our URLs stay off other sites' logs
    (b"x-frame-options", b"DENY"),
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Clock = Callable[[], float]


class TokenGate:
    """ASGI middleware: refuse what lacks the token before any route, the OpenAPI document included."""

    def __init__(self, app: Any, token: Token, *, metrics_open: bool, clock: Clock) -> None:
        self.app = app
        self.token = token
        self.metrics_open = metrics_open
        self.clock = clock

    def _is_open(self, path: str) -> bool:
        return (path in OPEN_PATHS or path.startswith("/static/")
                or (self.metrics_open and path == "/metrics"))

    def _allowed(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        if self.token.accepts_bearer(headers.get(b"authorization", b"").decode("latin-1")):
            return True
        from http.cookies import CookieError, SimpleCookie

        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers.get(b"cookie", b"").decode("latin-1"))
        except CookieError:
            return False
        morsel = jar.get(COOKIE)
        return morsel is not None and self.token.accepts_cookie(morsel.value, self.clock())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        path = scope["path"]
        if self._is_open(path) or self._allowed(scope):
            await self.app(scope, receive, with_headers)
            return
        accept = dict(scope.get("headers") or []).get(b"accept", b"").decode("latin-1")
        refusal: Response
        if scope["method"] == "GET" and "text/html" in accept and not path.startswith(("/api/", "/metrics")):
            refusal = RedirectResponse(f"/login?next={quote(path)}", status_code=303)
        else:
            refusal = JSONResponse({"detail": "a dashboard token is required (Authorization: Bearer TOKEN)"},
                                   status_code=401, headers={"WWW-Authenticate": 'Bearer realm="clusterctl"'})
        await refusal(scope, receive, with_headers)


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template is HTML
        undefined=jinja2.StrictUndefined,
    )
    return Jinja2Templates(env=env)


def _safe_next(value: str | None) -> str:
    """Only a local path: `//evil.example`, `https://...` or `/<TAB>/evil.example` (browsers drop the
    tab) would make /login an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or not value.isprintable():
        return "/"
    return value


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded body, first values only; empty when it outgrows LOGIN_FORM_MAX."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > LOGIN_FORM_MAX:
            return {}
    return {key: values[0] for key, values in parse_qs(body.decode("latin-1")).items()}


def create_app(store: Store, inventory: Inventory | None, token: Token, *, metrics_open: bool = False,
               host: str = "127.0.0.1", clock: Clock = time.time) -> Any:
    """The ASGI app: FastAPI wrapped in the token gate.

    `host` is the bind address: off loopback the cookie is `Secure`, so a browser sends it over TLS only.
    `clock` is injectable so tests can step past the session's end instead of sleeping.
    """
    model = ReadModel(store, inventory)
    app = FastAPI(
        title="clusterctl dashboard",
        version=__version__,
        description="Fleet health from the clusterctl state store. Every endpoint needs `Authorization: Bearer`.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # Swagger UI loads from a CDN; the document itself is enough
        redoc_url=None,
    )
    app.state.model = model
    app.include_router(api.router)
    app.include_router(rollout.router)
    app.include_router(checks.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = _templates()
    site = inventory.site.name if inventory is not None else None

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(StateError)
    async def store_down(_request: Request, exc: StateError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    def page(request: Request, kind: str, title: str, **params: Any) -> HTMLResponse:
        context = {"kind": kind, "title": title, "site": site, "version": __version__,
                   "page": {"kind": kind, **params}}
        return templates.TemplateResponse(request, "page.html", context)

    @app.get("/", include_in_schema=False)
    def fleet_page(request: Request) -> HTMLResponse:
        return page(request, "fleet", "Fleet")

    @app.get("/racks/{rack}", include_in_schema=False)
    def rack_page(request: Request, rack: str) -> HTMLResponse:
        return page(request, "rack", f"Rack {rack}", rack=rack)

    @app.get("/nodes/{node}", include_in_schema=False)
    def node_page(request: Request, node: str) -> HTMLResponse:
        return page(request, "node", f"Node {node}", node=node)

    @app.get("/runs/{run_id}", include_in_schema=False)
    def run_page(request: Request, run_id: int) -> HTMLResponse:
        return page(request, "run", f"Burn-in run {run_id}", run=run_id)

    @app.get("/events", include_in_schema=False)
    def events_page(request: Request) -> HTMLResponse:
        return page(request, "events", "Events", filters={k: request.query_params.get(k) or ""
                                                          for k in ("node", "kind", "stage")})

    def secure(request: Request) -> bool:
        return not is_loopback(host) or request.url.scheme == "https"

    def login_form(request: Request, target: str, *, failed: bool) -> Response:
        context = {"next": target, "failed": failed, "version": __version__}
        return templates.TemplateResponse(request, "login.html", context, status_code=401 if failed else 200)

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request) -> Response:
        """Only the form: a token in the query string is ignored, since the URL already went to logs and history."""
        return login_form(request, _safe_next(request.query_params.get("next")), failed=False)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await _form(request)
        target = _safe_next(form.get("next"))
        if not token.accepts(form.get("token")):
            return login_form(request, target, failed=True)
        done = RedirectResponse(target, status_code=303)  # 303: the browser follows with a GET, not a re-POST
        done.set_cookie(COOKIE, token.cookie_value(int(clock())), max_age=SESSION_S, path="/", httponly=True,
                        samesite="strict", secure=secure(request))
        return done

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        """Forgets the cookie in this browser; a copy made elsewhere lapses with SESSION_S or a new token."""
        done = RedirectResponse("/login", status_code=303)
        done.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure(request))
        return done

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)  # browsers ask on every page; an empty answer keeps consoles clean

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    exposition: list[Any] = []  # made on the first scrape: the metrics module loads only if /metrics is used

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        from clusterctl.dashboard.metrics import CONTENT_TYPE, Exposition

        if not exposition:
            exposition.append(Exposition(model))
        return Response(exposition[0](), media_type=CONTENT_TYPE)

    _declare_bearer(app)
    return TokenGate(app, token, metrics_open=metrics_open, clock=clock)


def _declare_bearer(app: FastAPI) -> None:
    """Say in the OpenAPI document that every operation needs the bearer token."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            doc.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            doc["security"] = [{"bearer": []}]
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
