"""Rulesets: per-model files over the base, site overrides on top, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusterctl.validate.errors import RulesError
from clusterctl.validate.evaluate import evaluate_report
from clusterctl.validate.expect import Expectation
from clusterctl.validate.rules import RULES_DIR, available_models, load_ruleset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "validate"


def test_every_builtin_rule_and_xid_has_severity_and_a_hint() -> None:
    assert available_models() == ["A100-SXM4-80GB", "H100-SXM5-80GB"]
    for model in available_models():
        rules = load_ruleset(model)
        assert rules.model == model and rules.nvml_names and rules.version >= 1
        for rule in rules.rules.values():
            assert rule.severity in ("fail", "warn") and len(rule.remediation) > 20, rule.id
        assert {n: rules.xid(n).severity for n in (13, 31, 43, 45, 48, 61, 62, 63, 64, 74, 79, 92, 94, 95)} == {
            13: "warn", 31: "warn", 43: "warn", 45: "warn", 48: "fail", 61: "fail", 62: "fail", 63: "warn",
            64: "fail", 74: "fail", 79: "fail", 92: "warn", 94: "warn", 95: "fail",
        }
        assert rules.xid(12345).severity == "warn" and "catalog" in rules.xid(12345).remediation
    assert load_ruleset("H100-SXM5-80GB").param("gpu.nvlink", "links") == 18
    assert load_ruleset("A100-SXM4-80GB").param("gpu.pcie_link", "gen") == 4


def test_site_file_changes_only_what_it_names(tmp_path: Path) -> None:
    site = tmp_path / "site-rules.yaml"
    site.write_text(
        "version: 2\n"
        "rules:\n"
        "  gpu.remap_pending: {severity: fail}\n"
        "  fabric.ib_errors: {params: {max_symbol_error: 10000}}\n"
        "xid:\n"
        "  13: {severity: fail, remediation: Our training jobs never fault; treat 13 as hardware.}\n"
    )
    rules = load_ruleset("H100-SXM5-80GB", site)
    assert rules.version == 2 and rules.sources[-1] == str(site.resolve())
    assert rules.rule("gpu.remap_pending").severity == "fail"
    assert "Reset the GPU" in rules.rule("gpu.remap_pending").remediation  # kept from the base
    assert rules.rule("fabric.ib_errors").params == {
        "max_symbol_error": 10000, "max_link_downed": 0, "max_link_error_recovery": 0}
    assert rules.xid(13).severity == "fail" and rules.xid(13).meaning.startswith("Graphics engine exception")
    report = json.loads((FIXTURES / "agent" / "remap-pending.json").read_text())
    checks = {c.name: c.status for c in evaluate_report(report, Expectation("n", gpu_count=8), rules)}
    assert checks["gpu.remap_pending"] == "fail"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: {gpu.count: {severity: maybe}}\n", "rules.gpu.count.severity"),
        ("rules: {gpu.count: {sevrity: fail}}\n", "rules.gpu.count.sevrity: Extra inputs are not permitted"),
        ("rules:\n  gpu.count: [unclosed\n", "not valid YAML"),
        ("rules: {my.rule: {severity: warn}}\n", "rule my.rule has no remediation"),
    ],
)
def test_bad_site_files_give_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    site = tmp_path / "bad.yaml"
    site.write_text(text)
    with pytest.raises(RulesError) as caught:
        load_ruleset("H100-SXM5-80GB", site)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_model_needs_a_site_ruleset(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="no ruleset for GPU model 'B200'.*--rules"):
        load_ruleset("B200")
    with pytest.raises(RulesError, match="cannot read"):
        load_ruleset("H100-SXM5-80GB", tmp_path / "missing.yaml")
    site = tmp_path / "b200.yaml"
    site.write_text("nvml_names: [NVIDIA B200]\nrules: {gpu.nvlink: {params: {links: 18}}}\n")
    rules = load_ruleset("B200", site)
    assert rules.nvml_names == ("NVIDIA B200",) and rules.param("gpu.nvlink", "links") == 18
    assert (RULES_DIR / "base.yaml").is_file()
