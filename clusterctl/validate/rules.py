"""Versioned rulesets: thresholds, severities and remediation hints, per GPU model, overridable per site.

Rules live in YAML (rules/base.yaml, rules/<GPU model>.yaml) rather than in code so a site can
tighten a threshold or downgrade a rule without a release; the checks in gpu.py, fabric.py,
software.py and power.py only ask the ruleset how to judge what they measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from clusterctl.validate.errors import RulesError
from clusterctl.verdict import CheckResult

RULES_DIR = Path(__file__).with_name("rules")
Severity = Literal["fail", "warn"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleSpec(_Spec):
    severity: Severity | None = None
    description: str | None = None
    remediation: str | None = None
    params: dict[str, Any] = {}


class XidSpec(_Spec):
    severity: Severity | None = None
    meaning: str | None = None
    remediation: str | None = None


class RulesFile(_Spec):
    version: int = 1
    model: str | None = None
    nvml_names: list[str] | None = None
    rules: dict[str, RuleSpec] = {}
    xid: dict[int | Literal["unknown"], XidSpec] = {}


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: str
    remediation: str
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class XidRule:
    xid: int | None
    severity: str
    meaning: str
    remediation: str


@dataclass(frozen=True)
class Ruleset:
    model: str | None
    version: int
    sources: tuple[str, ...]
    nvml_names: tuple[str, ...]
    rules: Mapping[str, Rule]
    xids: Mapping[int, XidRule]
    unknown_xid: XidRule

    def rule(self, rule_id: str) -> Rule:
        try:
            return self.rules[rule_id]
        except KeyError:
            raise RulesError(f"the ruleset ({', '.join(self.sources)}) has no rule {rule_id}") from None

    def param(self, rule_id: str, name: str, default: Any = None) -> Any:
        value = self.rule(rule_id).params.get(name)
        return default if value is None else value

    def xid(self, number: int) -> XidRule:
        return self.xids.get(number, self.unknown_xid)

    def judge(self, rule_id: str, broken: bool, detail: str, *, name: str | None = None,
              status: str | None = None, data: Any = None) -> CheckResult:
        """A check result under `rule_id`: its severity when `broken` (or the graded `status` given)."""
        rule = self.rule(rule_id)
        if status is None:
            status = rule.severity if broken else "pass"
        return CheckResult(name=name or rule_id, status=status, detail=detail, rule=rule_id,
                           remediation=rule.remediation, data=data)


def available_models() -> list[str]:
    return sorted(p.stem for p in RULES_DIR.glob("*.yaml") if p.stem != "base")


def load_ruleset(model: str | None, site_file: Path | None = None) -> Ruleset:
    """base.yaml, then rules/<model>.yaml, then the site's file: each changes only what it names."""
    layers = [_read(RULES_DIR / "base.yaml")]
    # Only a shipped model names a file: a model string such as "../../x" must never become a path.
    model_file = RULES_DIR / f"{model}.yaml" if model in available_models() else None
    if model_file is not None and model_file.is_file():
        layers.append(_read(model_file))
    site = _read(site_file) if site_file is not None else None
    if site is not None:
        layers.append(site)
    has_names = any(layer[1].nvml_names for layer in layers)
    if model and not has_names:
        raise RulesError(
            f"no ruleset for GPU model {model!r} (built in: {', '.join(available_models())}); "
            "pass --rules FILE with nvml_names and the model's limits"
        )
    return _merge(model, layers)


@cache
def _read_cached(path: Path, mtime: float) -> tuple[str, RulesFile]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        raw = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rules file: {exc.strerror}") from None
    except (YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise RulesError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    try:
        return str(path), RulesFile.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise RulesError(f"{path}: {key}: {first['msg']} ({exc.error_count()} problem(s))") from None


def _read(path: Path) -> tuple[str, RulesFile]:
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rules file: {exc.strerror}") from None
    return _read_cached(path.resolve(), mtime)


def _merge(model: str | None, layers: list[tuple[str, RulesFile]]) -> Ruleset:
    rules: dict[str, dict[str, Any]] = {}
    xids: dict[int | str, dict[str, Any]] = {}
    names: list[str] = []
    version = 0
    for _source, layer in layers:
        version = max(version, layer.version)
        names = layer.nvml_names if layer.nvml_names is not None else names
        for rule_id, spec in layer.rules.items():
            entry = rules.setdefault(rule_id, {"params": {}})
            for key, value in spec.model_dump(exclude_unset=True).items():
                if key == "params":
                    entry["params"] = {**entry["params"], **value}
                else:
                    entry[key] = value
        for number, xspec in layer.xid.items():
            xids.setdefault(number, {}).update(xspec.model_dump(exclude_unset=True))
    sources = tuple(s for s, _ in layers)
    built = {}
    for rule_id, entry in rules.items():
        missing = [k for k in ("severity", "remediation") if not entry.get(k)]
        if missing:
            raise RulesError(f"rule {rule_id} has no {' or '.join(missing)} in {', '.join(sources)}")
        built[rule_id] = Rule(rule_id, entry["severity"], entry["remediation"], entry.get("description") or "",
                              entry["params"])
    table: dict[int | str, XidRule] = {}
    for xid_key, fields in xids.items():
        if not all(fields.get(k) for k in ("severity", "meaning", "remediation")):
            raise RulesError(f"xid {xid_key} needs severity, meaning and remediation in {', '.join(sources)}")
        table[xid_key] = XidRule(None if xid_key == "unknown" else int(xid_key), fields["severity"], fields["meaning"],
                             fields["remediation"])
    unknown = table.pop("unknown", None) or XidRule(None, "warn", "An XID the ruleset does not list",
                                                    "Look it up in NVIDIA's XID catalog.")
    return Ruleset(model=model, version=version, sources=sources, nvml_names=tuple(names), rules=built,
                   xids={int(k): v for k, v in table.items()}, unknown_xid=unknown)
