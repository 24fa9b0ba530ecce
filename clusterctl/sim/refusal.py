"""The one exception a simulated BMC raises to refuse a request; the app renders it as a Redfish error.

Its own module so that state modules (bmc, accounts, dell) share it without importing each other.
"""

from __future__ import annotations


class ActionError(Exception):
    """A request the BMC refuses: HTTP status, Redfish MessageId and message (and Retry-After)."""

    def __init__(
        self,
        status: int,
        message_id: str,
        message: str,
        *,
        retry_after: int | None = None,
        args: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message_id = message_id
        self.message = message
        self.retry_after = retry_after
        self.args_ = args or []
