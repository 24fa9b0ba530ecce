"""The token gate, login, escaping and headers, against the app served by uvicorn on loopback."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest
from dashboard_support import AUTH, REPO, TOKEN  # type: ignore[import-not-found]

from clusterctl.dashboard.app import create_app
from clusterctl.dashboard.auth import TOKEN_ENV, Token, TokenError, load_token
from clusterctl.inventory import load_inventory
from clusterctl.state.store import Store

HTML = {"Accept": "text/html"}


@pytest.fixture
def base(store: Store, token: Token, serve) -> str:  # noqa: ANN001 - fixture
    store.set_stage("gpu0001", "os", "failed", run_id=None, reason="<img src=x onerror=alert(1)>")
    return serve(create_app(store, load_inventory(REPO / "inventories" / "lab.yaml"), token))


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


def test_login_sets_a_cookie_that_is_not_the_token(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        wrong = http.get("/login", params={"token": "not-the-token-at-all"})
        assert wrong.status_code == 401 and "not accepted" in wrong.text
        assert "clusterctl_dashboard" not in http.cookies
        ok = http.get("/login", params={"token": TOKEN, "next": "/racks/lab-r01"})
        assert ok.status_code == 303 and ok.headers["location"] == "/racks/lab-r01"
        cookie = http.cookies["clusterctl_dashboard"]
        assert cookie and TOKEN not in cookie
        assert "httponly" in ok.headers["set-cookie"].lower() and "samesite=strict" in ok.headers["set-cookie"].lower()
        assert http.get("/api/v1/fleet").status_code == 200  # the cookie now opens the API for the pages
        for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            away = http.get("/login", params={"token": TOKEN, "next": evil})
            assert away.headers["location"] == "/", evil


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
