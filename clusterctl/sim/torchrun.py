"""What a shell command asks torchrun to start. The lab answers torchrun commands without running
them (burn-in ranks, the all-reduce benchmark), so it reads the command as torchrun would."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

SHELL_OPS = {";", "&&", "||", "|", "&"}


@dataclass(frozen=True)
class Invocation:
    env: dict[str, str]
    """`NAME=value` words before the launcher."""
    launcher_args: list[str]
    """torchrun's own options."""
    script_args: list[str]
    """The module's options, up to the first shell operator."""


def parse_torchrun(command: str, module: str) -> Invocation | None:
    """`torchrun ... -m MODULE ...` (or `python -m torch.distributed.run ...`), else None."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    start = next((i for i, w in enumerate(words) if w.rsplit("/", 1)[-1] == "torchrun"), None)
    if start is None:
        start = next((i + 1 for i in range(len(words) - 1)
                      if words[i] == "-m" and words[i + 1] == "torch.distributed.run"), None)
    if start is None:
        return None
    rest = words[start + 1:]
    at = next((i for i in range(len(rest) - 1) if rest[i] == "-m" and rest[i + 1] == module), None)
    if at is None:
        return None
    script = rest[at + 2:]
    script = script[:next((i for i, w in enumerate(script) if w in SHELL_OPS), len(script))]
    env = dict(w.split("=", 1) for w in words[:start] if "=" in w and w.split("=", 1)[0].isidentifier())
    return Invocation(env, rest[:at], script)


def first_int(text: str) -> int:
    """torchrun accepts `2` or a range `1:4` for --nnodes; the lab takes the first number."""
    return int(str(text).split(":")[0])
