"""Whatever bytes the inventory file holds, `inventory check` exits 0 or 2 and never crashes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterctl.cli.main import run

REPO = Path(__file__).resolve().parents[2]
LAB = (REPO / "inventories" / "lab.yaml").read_bytes()
LINES = LAB.splitlines(keepends=True)
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check(tmp_path: Path, data: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    code = run(["--output", "json", "inventory", "check", str(path)])
    out, err = capsys.readouterr()
    assert code in (0, 2), (code, err)
    assert "Traceback" not in out + err


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(LAB) - 1), st.binary(min_size=0, max_size=4)), min_size=1, max_size=6
    )
)
def test_byte_edits(tmp_path: Path, capsys, edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(LAB)
    for offset, replacement in edits:
        data[offset : offset + 1] = replacement
    check(tmp_path, bytes(data), capsys)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["drop", "dup", "swap", "indent", "dedent"]), st.integers(0, len(LINES) - 1)
        ),
        min_size=1,
        max_size=5,
    )
)
def test_line_edits(tmp_path: Path, capsys, edits: list[tuple[str, int]]) -> None:
    lines = list(LINES)
    for op, i in edits:
        i %= len(lines)
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif op == "indent":
            lines[i] = b"  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i][2:] if lines[i].startswith(b"  ") else lines[i]
        if not lines:
            break
    check(tmp_path, b"".join(lines), capsys)


@FUZZ
@given(st.integers(0, len(LAB)))
def test_truncated(tmp_path: Path, capsys, size: int) -> None:
    check(tmp_path, LAB[:size], capsys)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_garbage(tmp_path: Path, capsys, data: bytes) -> None:
    check(tmp_path, data, capsys)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["version", "site", "defaults", "halls", "groups", "bios_profiles"]),
        yaml_values,
        max_size=6,
    )
)
def test_wrong_shapes(tmp_path: Path, capsys, doc: dict) -> None:
    import json

    check(tmp_path, json.dumps(doc).encode(), capsys)
