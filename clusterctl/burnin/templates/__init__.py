"""Job files for the launchers (sbatch scripts, Kubernetes manifests), rendered with jinja2.

Undefined names fail loudly: a job file with an empty field would fail later on a
cluster, far from the cause. Values come from the inventory and the command line, so each
is either quoted for where it lands (`shquote` for shell words, `tojson` for YAML) or must be
a plain `word`: `#SBATCH` lines and Kubernetes names cannot be quoted, and a newline there
would start a new shell line or YAML key.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from typing import Any

import jinja2

from clusterctl.errors import ClusterctlError

_WORD = re.compile(r"^[A-Za-z0-9_.,/\[\]:%+=@-]+$")


class JobFileError(ClusterctlError):
    """A value cannot be written into a job file safely."""


def word(value: Any) -> str:
    text = str(value)
    if not _WORD.match(text):
        shown = ascii(text[:60])
        raise JobFileError(f"{shown} cannot go into a job file: use letters, digits and . , / [ ] : % + = @ _ - only")
    return text


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("clusterctl.burnin", "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)  # noqa: S701 - shell scripts and YAML, not HTML
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    env.filters["word"] = word
    return env


def render(template: str, **values: Any) -> str:
    return _environment().get_template(template).render(**values)
