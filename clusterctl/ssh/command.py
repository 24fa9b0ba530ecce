"""The one way a remote command line is built: every word quoted for a POSIX shell.

sshd hands the command to the user's login shell, so an inventory value such as
`; touch /tmp/pwned` must reach the remote program as one literal argument.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def command_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """`env K=V ... argv...`, each word quoted; env goes on the command line because sshd drops most
    variables a client sends (AcceptEnv), while `env` works everywhere."""
    if not argv:
        raise ValueError("empty command")
    words: list[str] = []
    if env:
        words.append("env")
        for name, value in env.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"invalid environment variable name {name!r}")
            words.append(f"{name}={value}")
    words.extend(str(a) for a in argv)
    return shlex.join(words)
