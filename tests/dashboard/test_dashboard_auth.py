"""The token gate, login, escaping and headers, against the app served by uvicorn on loopback."""

from __future__ import annotations

import os
import stat
from http.cookies import Morsel, SimpleCookie
from pathlib import Path

import httpx
import pytest
from dashboard_support import AUTH, REPO, TOKEN  # type: ignore[import-not-found]

from clusterctl.dashboard.app import create_app
from clusterctl.dashboard.auth import COOKIE, SESSION_S, TOKEN_ENV, Token, TokenError, load_token
from clusterctl.inventory import load_inventory
from clusterctl.state.store import Store

HTML = {"Accept": "text/html"}
START = 1_700_000_000.0


class Clock:
    """A clock the test moves by hand, so a session's end is reached without sleeping."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def base(store: Store, token: Token, serve) -> str:  # noqa: ANN001 - fixture
    store.set_stage("gpu0001", "os", "failed", run_id=None, reason="<img src=x onerror=alert(1)>")
    return serve(create_app(store, load_inventory(REPO / "inventories" / "lab.yaml"), token))


def sign_in(http: httpx.Client, token: str = TOKEN, **form: str) -> httpx.Response:
    return http.post("/login", data={"token": token, **form})


def session_cookie(response: httpx.Response) -> Morsel[str]:
    jar: SimpleCookie = SimpleCookie()
    jar.load(response.headers["set-cookie"])
    return jar[COOKIE]


def test_everything_but_login_needs_the_token(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        for path in ("/api/v1/fleet", "/api/v1/openapi.json", "/metrics", "/api/v1/nodes/gpu0001"):
            refused = http.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Bearer")
        assert http.get("/api/v1/fleet", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"}).status_code == 401
        assert http.get("/api/v1/fleet", headers={"Authorization": "Basic " + TOKEN}).status_code == 401
        assert http.get("/api/v1/fleet", headers={"Cookie": f"clusterctl_dashboard={TOKEN}"}).status_code == 401
        page = http.get("/nodes/gpu0001", headers=HTML)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/nodes/gpu0001"
        assert http.get("/api/v1/fleet", headers=AUTH).status_code == 200
        assert http.get("/healthz").status_code == 200
        assert http.get("/static/dashboard.js").status_code == 200


def test_login_posts_the_token_and_sets_a_cookie_that_is_not_the_token(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        form = http.get("/login", params={"next": "/racks/lab-r01"})
        assert form.status_code == 200 and 'method="post"' in form.text and 'value="/racks/lab-r01"' in form.text
        wrong = sign_in(http, "not-the-token-at-all")
        assert wrong.status_code == 401 and "not accepted" in wrong.text
        assert COOKIE not in http.cookies
        ok = sign_in(http, next="/racks/lab-r01")
        assert ok.status_code == 303 and ok.headers["location"] == "/racks/lab-r01"
        cookie = http.cookies[COOKIE]
        assert cookie and TOKEN not in cookie
        assert http.get("/api/v1/fleet").status_code == 200  # the cookie now opens the API for the pages
        for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example"):
            away = sign_in(http, next=evil)
            assert away.status_code == 303 and away.headers["location"] == "/", evil
        assert sign_in(http, "x" * 5000).status_code == 401  # an oversized form is refused unread


def test_a_token_in_the_url_is_never_accepted(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        shown = http.get("/login", params={"token": TOKEN, "next": "/"})
        assert shown.status_code == 200 and "set-cookie" not in shown.headers
        assert TOKEN not in shown.text  # not echoed into the form either
        posted = http.post(f"/login?token={TOKEN}", data={"next": "/"})
        assert posted.status_code == 401 and COOKIE not in http.cookies
        for path in ("/api/v1/fleet", "/api/v1/openapi.json", "/metrics"):
            assert http.get(path, params={"token": TOKEN}).status_code == 401, path
            assert http.get(path, params={"access_token": TOKEN}).status_code == 401, path
        assert http.get("/", params={"token": TOKEN}, headers=HTML).status_code == 303  # to the login form


def test_the_cookie_is_httponly_strict_and_expires(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        cookie = session_cookie(sign_in(http))
    assert cookie["httponly"] and cookie["samesite"].lower() == "strict" and cookie["path"] == "/"
    assert int(cookie["max-age"]) == SESSION_S
    assert not cookie["secure"]  # on loopback over plain HTTP, or the browser would never send it back


@pytest.mark.parametrize("host", ["0.0.0.0", "10.20.0.5", "::", "dashboard.example.org"])
def test_the_cookie_is_secure_off_loopback(store: Store, token: Token, serve, host: str) -> None:  # noqa: ANN001
    with httpx.Client(base_url=serve(create_app(store, None, token, host=host)), timeout=10) as http:
        assert session_cookie(sign_in(http))["secure"]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_the_cookie_is_not_secure_on_loopback(store: Store, token: Token, serve, host: str) -> None:  # noqa: ANN001
    with httpx.Client(base_url=serve(create_app(store, None, token, host=host)), timeout=10) as http:
        assert not session_cookie(sign_in(http))["secure"]


def test_the_cookie_lapses_after_a_session(store: Store, token: Token, serve) -> None:  # noqa: ANN001
    clock = Clock()
    with httpx.Client(base_url=serve(create_app(store, None, token, clock=clock)), timeout=10) as http:
        assert sign_in(http).status_code == 303
        issued = http.cookies[COOKIE]
        clock.now = START + SESSION_S - 1
        assert http.get("/api/v1/fleet").status_code == 200
        clock.now = START + SESSION_S
        assert http.get("/api/v1/fleet").status_code == 401
        stamp, _, mac = issued.partition(".")
        restamped = f"{int(stamp) + SESSION_S}.{mac}"  # a later issue time does not carry the old signature
        http.cookies.clear()
        assert http.get("/api/v1/fleet", headers={"Cookie": f"{COOKIE}={restamped}"}).status_code == 401
        clock.now = START - 1
        assert http.get("/api/v1/fleet", headers={"Cookie": f"{COOKIE}={issued}"}).status_code == 401


def test_a_new_token_voids_old_cookies(store: Store, token: Token, serve) -> None:  # noqa: ANN001
    clock = Clock()
    before = serve(create_app(store, None, token, clock=clock))
    after = serve(create_app(store, None, Token("a-rotated-dashboard-token-98765", "test"), clock=clock))
    with httpx.Client(base_url=before, timeout=10) as http:
        sign_in(http)
        cookie = {"Cookie": f"{COOKIE}={http.cookies[COOKIE]}"}
    assert httpx.get(before + "/api/v1/fleet", headers=cookie, timeout=10).status_code == 200
    assert httpx.get(after + "/api/v1/fleet", headers=cookie, timeout=10).status_code == 401


def test_logout_clears_the_cookie(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        sign_in(http)
        assert http.get("/api/v1/fleet").status_code == 200
        out = http.post("/logout")
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert int(session_cookie(out)["max-age"]) == 0
        assert COOKIE not in http.cookies
        assert http.get("/api/v1/fleet").status_code == 401


def test_pages_escape_what_the_store_holds_and_send_a_strict_csp(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10, headers=AUTH) as http:
        name = "<script>alert(1)<"
        page = http.get(f"/nodes/{name}")
        assert page.status_code == 200
        assert "<script>alert(1)" not in page.text
        assert "&lt;script&gt;alert(1)&lt;" in page.text  # <title> and <h1>
        assert "\\u003cscript\\u003ealert(1)\\u003c" in page.text  # the page JSON in its <script> tag
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        api = http.get("/api/v1/nodes/gpu0001").json()
        assert api["stages"][0]["reason"] == "<img src=x onerror=alert(1)>"  # data stays data in JSON
        assert "password" not in http.get("/api/v1/nodes/gpu0001").text


def test_metrics_open_only_when_asked(store: Store, token: Token, serve) -> None:  # noqa: ANN001
    base = serve(create_app(store, None, token, metrics_open=True))
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/metrics").status_code == 200
        assert http.get("/api/v1/fleet").status_code == 401


def test_token_is_generated_once_stored_private_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    where = tmp_path / "state" / "dashboard-token"
    first = load_token(stored=where)
    assert first.generated and len(first.value) >= 32
    assert stat.S_IMODE(where.stat().st_mode) == 0o600
    again = load_token(stored=where)
    assert not again.generated and again.value == first.value
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment-123")
    assert load_token(stored=where).value == "from-the-environment-123"
    given = tmp_path / "token"
    given.write_text("from-a-file-0123456789\n")
    assert load_token(given, stored=where).value == "from-a-file-0123456789"
    given.write_text("short")
    with pytest.raises(TokenError, match="at least 16"):
        load_token(given, stored=where)
    with pytest.raises(TokenError, match="cannot read"):
        load_token(tmp_path / "missing", stored=where)
    assert os.environ[TOKEN_ENV] not in where.read_text()
