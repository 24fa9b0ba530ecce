"""Lab failures the user can act on; subclasses of the one clusterctl hierarchy."""

from __future__ import annotations

from clusterctl.errors import ClusterctlError


class LabError(ClusterctlError):
    """The lab cannot do what was asked (bad option, bad fault, failed start)."""


class FaultError(LabError):
    """A fault names an unknown kind, an unknown node or a bad parameter."""


class LabNotRunning(LabError):
    """No lab process answers for this lab directory."""
