"""Job files for the launchers (sbatch scripts, Kubernetes manifests), rendered with jinja2.

Undefined names fail loudly: a job file with an empty field would fail later on a
cluster, far from the cause.
"""

from __future__ import annotations

import shlex
from functools import cache
from typing import Any

import jinja2


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("clusterctl.burnin", "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)  # noqa: S701 - shell scripts and YAML, not HTML
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    return env


def render(template: str, **values: Any) -> str:
    return _environment().get_template(template).render(**values)
