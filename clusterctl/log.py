"""Logging through one place: text for people, JSON lines on request, secrets redacted.

Secret values resolved from references register themselves with `redact`; every
record passes through the filter before any handler sees it, so a secret that
slipped into a message, an argument or an exception is still never written.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import re
import sys
import threading
import time
from types import TracebackType
from typing import Any

_secrets: set[str] = set()
_lock = threading.Lock()
_known: tuple[tuple[str, ...], list[int]] | None = ((), [])
"""The secrets longest first and their negated lengths (for bisect); None after a change."""
# Credentials that appear in protocol text even when we never resolved them ourselves.
_PATTERNS = [
    re.compile(r"(?i)(x-auth-token[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)"),
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:basic|bearer)\s+)([^\s\"',}]+)"),
    # Quoted values ("password": "x") and key=value pairs; prose such as "password: use env:NAME" is left alone.
    re.compile(r"(?i)([\"']?password[\"']?\s*[:=]\s*[\"'])([^\"']+)"),
    re.compile(r"(?i)(\bpassword=)([^\s&,;]+)"),
]
MASK = "***"


def redact(value: str) -> None:
    """Remember a secret value so that it is masked wherever it would be logged."""
    global _known
    if value and len(value) >= 3:
        with _lock:
            if value not in _secrets:
                _secrets.add(value)
                _known = None


def forget(value: str) -> None:
    """Stop masking a secret that no longer grants anything (a Redfish session after logout).

    Long runs open thousands of sessions; without this the mask list, scanned for every
    log line and stored payload, would only grow.
    """
    global _known
    with _lock:
        if value in _secrets:
            _secrets.discard(value)
            _known = None


# clusterctl's own settings that carry a credential whether or not this process resolved it.
_CREDENTIAL_SETTINGS = ("CLUSTERCTL_STATE", "CLUSTERCTL_DASHBOARD_TOKEN")


def masked_environment() -> dict[str, str]:
    """Overrides that hide this process's secrets from a child's environment.

    ansible-runner copies the whole environment into artifacts/<id>/command and hands it on to
    ansible-playbook and ssh; sbatch forwards it into the job. Their settings can override a
    variable but not remove it, so each one that holds a secret is given back masked.
    """
    masked = {}
    for name, value in os.environ.items():
        scrubbed = scrub(value)
        if scrubbed != value:
            masked[name] = scrubbed
        elif name in _CREDENTIAL_SETTINGS:
            masked[name] = MASK
    return masked


def scrub(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return mask_secrets(text)


def mask_secrets(text: str) -> str:
    """Only the secret values this process resolved: for data (JSON output), where a key named
    `password` holds a reference such as env:NAME that the patterns above would hide.

    Every string of every stored payload comes here, with hundreds of live session tokens known
    during a provision run: the sorted list is kept between changes, and a secret longer than the
    text is not looked for (most payload strings are short: versions, states, names)."""
    global _known
    known = _known
    if known is None:
        with _lock:
            ordered = tuple(sorted(_secrets, key=len, reverse=True))
            known = _known = (ordered, [-len(s) for s in ordered])
    secrets, lengths = known
    for secret in secrets[bisect.bisect_left(lengths, -len(text)):]:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = scrub(message)
        record.args = None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("node", "stage", "bmc", "run_id"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_text:
            doc["exception"] = record.exc_text
        return json.dumps(doc)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record arrives, not the one of `setup` time.

    The CLI runs in-process in tests, each under its own captured stderr: a handler holding
    the first one would write to a closed file for the rest of the session.
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


# Libraries that log about connections, sessions and requests. A handler of their own would
# write before the root's filter runs, so any is removed and their records propagate; uvicorn
# adds none because the dashboard starts it with log_config=None. Ansible Runner's logger is
# spelled with a hyphen. SQLAlchemy is left at the warnings level it sets itself: at info it
# would log every statement.
_LIBRARIES = ("paramiko", "asyncssh", "uvicorn", "uvicorn.error", "ansible-runner", "ansible_runner", "httpx",
              "httpcore")


def setup(verbosity: int = 0, json_lines: bool = False) -> None:
    """Send every log record of the process, ours and every library's, through one redacting handler.

    verbosity: -1 quiet (errors), 0 warnings, 1 info, 2+ debug. Libraries (SSH, HTTP, uvicorn,
    Ansible Runner) stay at warnings until -vv (info) and -vvv (debug): their info lines are
    one per connection, which at fleet scale would bury ours.

    The handler sits on the root logger because a filter on a logger never sees records
    propagated from its children, while a handler's filter sees every record that reaches it:
    paramiko, asyncssh, uvicorn, Ansible Runner, `warnings` and uncaught exceptions all end
    up there, so a registered secret is masked whoever logs it.
    """
    own = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    libraries = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.WARNING, 2: logging.INFO}.get(verbosity, own)
    handler = _StderrHandler()
    handler.addFilter(_RedactFilter())
    handler.setFormatter(
        _JSONFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    # Replace our handler from an earlier setup (tests call the CLI many times); keep others'
    # (pytest's capture) in place.
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(libraries)
    ours = logging.getLogger("clusterctl")
    ours.handlers.clear()
    ours.setLevel(own)
    ours.propagate = True
    for name in _LIBRARIES:
        library = logging.getLogger(name)
        library.handlers = [h for h in library.handlers if isinstance(h, logging.NullHandler)]
        library.propagate = True
        library.setLevel(libraries)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """Uncaught exceptions are bugs, shown with their traceback, but as a record: one may quote a secret."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("clusterctl").critical("unexpected error (a bug): %s", kind.__name__, exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("clusterctl").critical(
        "unexpected error in thread %s (a bug): %s", name, args.exc_type.__name__,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def get(name: str) -> logging.Logger:
    return logging.getLogger(f"clusterctl.{name}")
