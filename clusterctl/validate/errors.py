"""Validation's own bad-input error (exit 2), part of the one `ClusterctlError` hierarchy."""

from __future__ import annotations

from clusterctl.errors import ClusterctlError


class RulesError(ClusterctlError):
    """A ruleset cannot be used: unreadable, malformed, or missing for a GPU model."""
