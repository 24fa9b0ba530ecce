"""Logging through one place: text for people, JSON lines on request, secrets redacted.

Secret values resolved from references register themselves with `redact`; every
record passes through the filter before any handler sees it, so a secret that
slipped into a message, an argument or an exception is still never written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time

_secrets: set[str] = set()
_lock = threading.Lock()
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
    if value and len(value) >= 3:
        with _lock:
            _secrets.add(value)


def forget(value: str) -> None:
    """Stop masking a secret that no longer grants anything (a Redfish session after logout).

    Long runs open thousands of sessions; without this the mask list, scanned for every
    log line and stored payload, would only grow.
    """
    with _lock:
        _secrets.discard(value)


def scrub(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    if _secrets:
        with _lock:
            known = sorted(_secrets, key=len, reverse=True)
        for secret in known:
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


def setup(verbosity: int = 0, json_lines: bool = False) -> None:
    """verbosity: -1 quiet (errors), 0 warnings, 1 info, 2+ debug."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    root = logging.getLogger("clusterctl")
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RedactFilter())
    handler.setFormatter(
        _JSONFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def get(name: str) -> logging.Logger:
    return logging.getLogger(f"clusterctl.{name}")
