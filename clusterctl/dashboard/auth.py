"""Who may read the dashboard: one bearer token, given by header or by a cookie that /login sets.

The token is a capability, like a Jupyter token: generated at first start (printed once, kept
0600 in the state directory), or supplied by `--token-file` / CLUSTERCTL_DASHBOARD_TOKEN so several
operators can share one. The token travels only in a POST body or an `Authorization:` header, never
in a URL, where proxy logs and browser history would keep it.

The cookie holds `ISSUED.HMAC(token, ISSUED)`, not the token: a cookie copied from a browser profile
does not reveal what to type into `Authorization:`, it lapses after `SESSION_S` without any state on
the server, and rotating the token voids every cookie issued under the old one. Every comparison is
constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from clusterctl import log
from clusterctl.errors import ClusterctlError
from clusterctl.state.private import private_dir, state_dir

TOKEN_ENV = "CLUSTERCTL_DASHBOARD_TOKEN"  # noqa: S105 - the variable's name, not a token
COOKIE = "clusterctl_dashboard"
MIN_LENGTH = 16
COOKIE_SHAPE = re.compile(r"([0-9]{1,12})\.([0-9a-f]{64})")  # ISSUED.HMAC, as cookie_value writes it
SESSION_S = 12 * 3600  # one working shift: long enough not to nag, short enough that a lost cookie lapses


class TokenError(ClusterctlError):
    """The dashboard token cannot be read or is unusable."""


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)  # a repr in a log line or traceback must not show it
    source: str  # "file:PATH", "env", "generated:PATH", "stored:PATH"

    @property
    def generated(self) -> bool:
        return self.source.startswith("generated:")

    def cookie_value(self, issued: int) -> str:
        return f"{issued}.{self._mac(issued)}"

    def _mac(self, issued: int) -> str:
        message = f"clusterctl-dashboard-cookie:{issued}".encode()
        return hmac.new(self.value.encode(), message, hashlib.sha256).hexdigest()

    def accepts_bearer(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.value.encode())

    def accepts_cookie(self, value: str | None, now: float) -> bool:
        """Stateless: the stamp and the token alone decide, so a restart keeps sessions and a new token ends them."""
        shape = COOKIE_SHAPE.fullmatch(value or "")
        if shape is None or not 0 <= now - int(shape[1]) < SESSION_S:
            return False
        return hmac.compare_digest(shape[2].encode(), self._mac(int(shape[1])).encode())

    def accepts(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), self.value.encode())


def default_token_path() -> Path:
    return state_dir() / "dashboard-token"


def load_token(token_file: Path | None = None, stored: Path | None = None) -> Token:
    """--token-file, then the environment, then the stored token, else a new one stored 0600."""
    if token_file is not None:
        return _remember(Token(_read(token_file), f"file:{token_file}"))
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return _remember(Token(_checked(env, TOKEN_ENV), "env"))
    stored = stored or default_token_path()
    if stored.exists():
        return _remember(Token(_read(stored), f"stored:{stored}"))
    value = secrets.token_urlsafe(32)
    try:
        private_dir(stored.parent)
        fd = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
    except OSError as exc:
        raise TokenError(f"cannot store the dashboard token at {stored}: {exc.strerror}") from exc
    return _remember(Token(value, f"generated:{stored}"))


def _read(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise TokenError(f"cannot read the dashboard token file {path}: {exc.strerror}") from exc
    return _checked(text, str(path))


def _checked(value: str, where: str) -> str:
    if len(value) < MIN_LENGTH or any(c.isspace() for c in value):
        raise TokenError(f"the dashboard token in {where} must be at least {MIN_LENGTH} characters, without spaces")
    return value


def _remember(token: Token) -> Token:
    log.redact(token.value)  # cookies differ by issue time and lapse, so there is no fixed string to redact
    return token


def is_loopback(host: str) -> bool:
    """Only a loopback listener may hand out a cookie without `Secure`: nothing else can see it on the wire."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
