"""DCGM diagnostics level 3 judged from `dcgmi diag -r 3 -j`. The fixtures follow the JSON layout of DCGM 3.x
("DCGM GPU Diagnostic", warnings as objects with an error id) and 4.x ("DCGM Diagnostic", gpu_id numbers),
written by hand to DCGM's documented layout (no GPU here to record one)."""

from __future__ import annotations

from pathlib import Path

from clusterctl.check import dcgm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dcgm"


def test_a_failed_memory_test_fails_the_node_and_names_the_gpu_and_warning() -> None:
    text = (FIXTURES / "diag_r3_fail.json").read_text()
    verdict = dcgm.judge("gpu0007", 226, "Successfully ran diagnostic for group.\n" + text, "")
    assert verdict.status == "fail"
    fail = next(c for c in verdict.checks if c.status == "fail")
    assert fail.name == dcgm.CHECK and "GPU Memory (GPU 1)" in fail.detail and "ecc_dbe_volatile_total" in fail.detail
    warn = next(c for c in verdict.checks if c.status == "warn")
    assert "PCIe (GPU 1): GPU 1 PCIe replay rate" in warn.detail
    assert verdict.metrics["dcgm"] == {"failed": 1, "warned": 1, "passed": 13}


def test_dcgm_4_layout_passes_and_a_missing_dcgmi_is_a_note_not_a_failure() -> None:
    verdict = dcgm.judge("gpu0001", 0, (FIXTURES / "diag_r3_pass_v4.json").read_text(), "")
    assert verdict.status == "pass" and verdict.metrics["dcgm"]["passed"] == 5
    missing = dcgm.judge("gpu0002", 127, "", "sh: 1: dcgmi: not found\n")
    assert missing.status == "pass" and missing.checks == []
    assert missing.metrics["dcgm"].startswith("skipped")
    garbled = dcgm.judge("gpu0003", 1, "Error: unable to connect to host engine", "")
    assert garbled.status == "warn" and "without a readable result" in garbled.checks[0].detail
    odd = dcgm.parse('{"DCGM GPU Diagnostic": {"test_categories": [{"category": "x", "tests": '
                     '[{"name": "t", "results": [{"status": "Exploded"}]}]}]}}')
    assert odd.warned == ["t: status exploded not understood"] and not odd.passed
