"""The one exception hierarchy of clusterctl.

The CLI turns every `ClusterctlError` into a one-line message and the exit code
it carries; anything else is a bug and is allowed to show a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_OK = 0
EXIT_FAILED_NODES = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def printable(text: str, limit: int = 2000) -> str:
    """One line a terminal shows as it is: control characters escaped (a message may quote
    untrusted input, and a terminal escape sequence or newline in it must not act), long text cut."""
    if text.isprintable() and len(text) <= limit:
        return text
    shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


class ClusterctlError(Exception):
    """Base class: a failure the user can act on, with a message that says how."""

    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True)
class Problem:
    """One finding about an input file, pointing at where to fix it."""

    file: str
    line: int | None
    column: int | None
    message: str
    severity: str = "error"  # "error" | "warning"
    key: str | None = None
    hint: str | None = None

    def location(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def render(self) -> str:
        text = f"{self.location()}: {self.severity}: "
        if self.key:
            text += f"{self.key}: "
        text += self.message
        if self.hint:
            text += f" ({self.hint})"
        return printable(text)

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
            "key": self.key,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass
class InventoryError(ClusterctlError):
    """The inventory cannot be used; `problems` lists every error found, not just the first."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class SecretError(ClusterctlError):
    """A secret reference cannot be resolved. The message never contains the secret."""


class SelectionError(ClusterctlError):
    """`--limit` matched nothing or named something unknown."""


class StateError(ClusterctlError):
    """The state store is unreachable, too new, or refuses a write."""


class BMCError(ClusterctlError):
    """Base for Redfish failures; carries the BMC it concerns."""

    exit_code = EXIT_FAILED_NODES

    def __init__(self, message: str, *, bmc: str | None = None) -> None:
        super().__init__(f"{bmc}: {message}" if bmc else message)
        self.bmc = bmc


class BMCUnreachable(BMCError):
    """No TCP/TLS connection could be made, or it timed out."""


class BMCAuthFailed(BMCError):
    """The BMC refused the credentials (401/403) or session creation."""


class BMCRequestFailed(BMCError):
    """The BMC answered with an error; the message includes @Message.ExtendedInfo."""

    def __init__(self, message: str, *, bmc: str | None = None, status: int | None = None) -> None:
        super().__init__(message, bmc=bmc)
        self.status = status


class TaskFailed(BMCError):
    """A Redfish task or Dell job ended in an exception state or ran past its deadline."""


class NodeCheckFailed(ClusterctlError):
    exit_code = EXIT_FAILED_NODES
