"""The HTTP side of a simulated BMC: request and response shapes, Redfish error bodies, ETags.

Shared by the route table (`routes`), the write handlers (`actions`) and the ASGI app (`app`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clusterctl.sim.bmc import BMC, ActionError
from clusterctl.sim.resources import V1


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    bmc: BMC
    _json: Any = None
    user: str = ""  # the authenticated account, set by the app

    def json(self) -> dict[str, Any]:
        if self._json is None:
            if not self.body:
                self._json = {}
            else:
                try:
                    self._json = json.loads(self.body)
                except (ValueError, UnicodeDecodeError):
                    raise ActionError(
                        400,
                        "Base.1.12.MalformedJSON",
                        "The request body submitted was malformed JSON and could not be parsed "
                        "by the receiving service.",
                    ) from None
            if not isinstance(self._json, dict):
                raise ActionError(400, "Base.1.12.MalformedJSON", "The request body must be a JSON object.")
        return self._json


@dataclass
class Response:
    status: int
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[..., "dict[str, Any] | Response | None"]


@dataclass
class Route:
    path: str
    pattern: re.Pattern[str]
    get: Handler | None = None
    post: Handler | None = None
    patch: Handler | None = None
    delete: Handler | None = None

    @property
    def allow(self) -> str:
        methods = ["GET", "HEAD"] if self.get else []
        methods += [m.upper() for m in ("post", "patch", "delete") if getattr(self, m)]
        return ", ".join(methods)


RESOLUTIONS = {
    "NoValidSession": "Log in with valid credentials (session or basic authentication).",
    "ResourceAtUriUnauthorized": "Log in with valid credentials.",
    "RAC0218": "Close one or more sessions before opening another session.",
    "ServiceTemporarilyUnavailable": "Wait the time given in Retry-After, then retry the request.",
    "PreconditionFailed": "Read the resource again and retry with its current ETag.",
    "ResourceMissingAtURI": "Check the URI; it does not exist on this service.",
}


def error_body(
    message_id: str, message: str, args: list[str] | None = None, severity: str = "Critical"
) -> dict[str, Any]:
    resolution = RESOLUTIONS.get(message_id.rsplit(".", 1)[-1], "Correct the request and resubmit it.")
    return {
        "error": {
            "code": "Base.1.12.GeneralError",
            "message": "A general error has occurred. See ExtendedInfo for more information.",
            "@Message.ExtendedInfo": [
                {
                    "@odata.type": "#Message.v1_1_2.Message",
                    "MessageId": message_id,
                    "Message": message,
                    "MessageArgs": args or [],
                    "Severity": severity,
                    "MessageSeverity": severity,
                    "Resolution": resolution,
                }
            ],
        }
    }


def err(exc: ActionError) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
    return Response(exc.status, error_body(exc.message_id, exc.message, exc.args_), headers)


def missing(req: Request) -> Response:
    return Response(
        404,
        error_body("Base.1.12.ResourceMissingAtURI", f"The resource at the URI {req.path} was not found.", [req.path]),
    )


def need(body: dict[str, Any], key: str, kind: type = str) -> Any:
    if key not in body:
        raise ActionError(
            400,
            "Base.1.12.ActionParameterMissing",
            f"The action requires the parameter {key} to be present in the request body.",
            args=[key],
        )
    if not isinstance(body[key], kind):
        raise ActionError(
            400,
            "Base.1.12.ActionParameterValueTypeError",
            f"The value for the parameter {key} is of a different type than expected.",
            args=[key],
        )
    return body[key]


# --- handlers ------------------------------------------------------------------------------------


def etag_of(body: dict[str, Any]) -> str:
    return '"' + hashlib.sha1(json.dumps(body, sort_keys=True).encode(), usedforsecurity=False).hexdigest()[:20] + '"'


def normalize(path: str) -> str:
    if path in ("/redfish/v1", "/redfish/v1/"):
        return f"{V1}/"
    return path.rstrip("/") or "/"


# --- the ASGI app -----------------------------------------------------------------------------------
