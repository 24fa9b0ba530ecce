"""The limits file of the peer and history judges (`check --limits FILE`; built in: limits.yaml beside this).

Read with line numbers, so every bad value is refused with the file, the line, what is wrong and the fix,
before a round starts: a typo in a limit would otherwise silently judge a whole fleet by the wrong number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterctl.check.figures import METRICS, XID_PREFIX
from clusterctl.check.judge import Policy
from clusterctl.errors import ClusterctlError

BUILT_IN = Path(__file__).with_name("limits.yaml")


@dataclass(frozen=True)
class Setting:
    low: float
    high: float
    words: str
    whole: bool = False


SETTINGS = {
    "window_days": Setting(0.01, 365, "days, more than 0 and at most 365"),
    "min_history": Setting(1, 1000, "a whole number of rounds, 1 or more", whole=True),
    "max_drop": Setting(0.001, 0.9, "a share between 0.001 and 0.9 (0.05 is 5 %)"),
    "max_rise_c": Setting(0.1, 50, "°C, between 0.1 and 50"),
    "rate_days": Setting(0.01, 90, "days, more than 0 and at most 90"),
    "peer_mads": Setting(0.5, 100, "a factor between 0.5 and 100"),
    "peer_share": Setting(0.001, 0.9, "a share between 0.001 and 0.9 (0.10 is 10 %)"),
    "per_day": Setting(0, 1e9, "a growth a day, 0 or more"),
}


class LimitsError(ClusterctlError):
    pass


def load(path: Path | None = None, **overrides: float | None) -> Policy:
    """The policy from the file (the built-in one by default), with command-line `overrides` over its defaults."""
    import yaml

    source = path or BUILT_IN
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise LimitsError(f"{source}: cannot read the limits file ({exc.strerror}); fix: give an existing file") \
            from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else str(source)
        raise LimitsError(f"{where}: not YAML ({getattr(exc, 'problem', exc)}); fix: check the indentation and "
                          "colons") from None
    top = _mapping(root, source, "the file")
    defaults: dict[str, float] = {}
    metrics: dict[str, dict[str, float]] = {}
    for key, value in top:
        if key.value == "defaults":
            defaults = _settings(value, source, "defaults", counter=True)
            defaults.pop("per_day", None)
        elif key.value == "metrics":
            for name, body in _mapping(value, source, "metrics"):
                m = METRICS.get(name.value)
                if m is None and not str(name.value).startswith(XID_PREFIX):
                    near = ", ".join(sorted(k for k in METRICS if k.split(".")[0] == str(name.value).split(".")[0]))
                    raise LimitsError(f"{source}:{name.start_mark.line + 1}: unknown metric {name.value!r}; fix: "
                                      f"use one of {near or ', '.join(sorted(METRICS))}")
                metrics[name.value] = _settings(body, source, name.value, counter=m is not None and
                                                m.kind == "counter")
        else:
            raise LimitsError(f"{source}:{key.start_mark.line + 1}: unknown key {key.value!r}; fix: the file holds "
                              "only `defaults:` and `metrics:`")
    defaults.update({k: v for k, v in overrides.items() if v is not None})
    policy = Policy(**{k: (int(v) if SETTINGS[k].whole else v) for k, v in defaults.items()})  # type: ignore[arg-type]
    return Policy(**{**_fields(policy), "metrics": metrics})


def _fields(policy: Policy) -> dict[str, Any]:
    from dataclasses import fields

    return {f.name: getattr(policy, f.name) for f in fields(policy)}


def _mapping(node: Any, source: Path, what: str) -> list[tuple[Any, Any]]:
    import yaml

    if node is None:
        return []
    if not isinstance(node, yaml.MappingNode):
        raise LimitsError(f"{source}:{node.start_mark.line + 1}: {what} must be a mapping of names to values; fix: "
                          "write `name: value` lines under it")
    return [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]


def _settings(node: Any, source: Path, what: str, *, counter: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in _mapping(node, source, what):
        line = f"{source}:{key.start_mark.line + 1}"
        setting = SETTINGS.get(key.value)
        if setting is None:
            raise LimitsError(f"{line}: {what}: unknown setting {key.value!r}; fix: use one of "
                              f"{', '.join(SETTINGS)}")
        if key.value == "per_day" and not counter and what != "defaults":
            raise LimitsError(f"{line}: {what}: per_day applies to counters only; fix: use max_drop or max_rise_c "
                              "for this metric")
        try:
            number = float(value.value)
        except (TypeError, ValueError):
            number = float("nan")
        if not (setting.low <= number <= setting.high) or (setting.whole and number != int(number)):
            raise LimitsError(f"{line}: {what}: {key.value} is {value.value!r}; fix: {setting.words}")
        out[key.value] = number
    return out
