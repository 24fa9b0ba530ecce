"""When and how long to retry a Redfish request (tenacity), honouring the BMC's Retry-After.

iDRAC answers 503 while it is busy between operations (iDRAC 5.x needs ~20 s between some
calls); the BMC knows best how long to wait, so its Retry-After (RFC 9110, section 10.2.3) wins over
our own exponential backoff, capped so one BMC cannot park a worker forever.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# A POST that reached the BMC may have been applied: only retry answers that say it was not.
RETRY_STATUSES_NOT_APPLIED = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 30.0
    jitter: float = 0.5
    max_total: float = 120.0  # seconds of retrying for one request, waits included


ONCE = RetryPolicy(attempts=1)
"""For a poll loop's looks: the loop is the retry, at its own cadence."""


class RetryableStatus(Exception):
    """A response the BMC asked us to repeat later; carries its Retry-After in seconds."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = parse_retry_after(response.headers.get("Retry-After"))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None when absent or garbage."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def is_tls_verification_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _WaitRetryAfter(wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.fallback = wait_exponential(multiplier=policy.initial_wait, max=policy.max_wait) + wait_random(
            0, policy.jitter
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
            return min(exc.retry_after, self.policy.max_wait)
        return self.fallback(retry_state)


def _should_retry(idempotent: bool):  # noqa: ANN202 - tenacity predicate
    def check(exc: BaseException) -> bool:
        if isinstance(exc, RetryableStatus):
            allowed = RETRY_STATUSES if idempotent else RETRY_STATUSES_NOT_APPLIED
            return exc.response.status_code in allowed
        if is_tls_verification_error(exc):
            return False  # retrying cannot make an untrusted certificate trusted
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            return True  # the request never left
        return idempotent and isinstance(exc, httpx.TransportError)

    return check


def retrying(policy: RetryPolicy, *, idempotent: bool) -> AsyncRetrying:
    return AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_total),
        wait=_WaitRetryAfter(policy),
        retry=retry_if_exception(_should_retry(idempotent)),
        reraise=True,
    )
