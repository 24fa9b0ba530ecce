"""The capacity floor's arithmetic, and the options that set it refused with a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import CLI

from clusterctl.maintain.floor import Floor, FloorOptionError, parse_count, parse_min_available
from clusterctl.sim.inventory import render_lab_inventory


def test_percentages_round_down_but_never_to_zero() -> None:
    assert parse_count("5%", 412, "--max-unavailable") == 20
    assert parse_count("5%", 4, "--max-unavailable") == 1
    assert parse_count("3", 4, "--max-unavailable") == 3
    for bad in ("0", "-1", "0%", "150%", "x", "5 %%"):
        with pytest.raises(FloorOptionError, match="--max-unavailable"):
            parse_count(bad, 10, "--max-unavailable")


def test_nodes_already_down_count_against_the_floor() -> None:
    floor = Floor(total=10, max_unavailable=3)
    assert floor.choose(["a", "b", "c", "d"], unavailable=set()) == ["a", "b", "c"]
    assert floor.choose(["a", "b", "c", "d"], unavailable={"x", "y"}) == ["a"]
    assert floor.choose(["a", "b"], unavailable={"x", "y", "z"}) == []
    assert floor.choose(["x", "a"], unavailable={"x"}) == ["a"] and floor.broken({"x", "y", "z", "w"})


def test_a_partition_never_drops_below_its_minimum() -> None:
    partitions = {"gpu": {"a", "b", "c", "d"}, "cpu": {"e", "f"}}
    minimum = parse_min_available(["gpu=75%", "cpu=1"], partitions)
    assert minimum == {"gpu": 3, "cpu": 1}
    floor = Floor(total=6, max_unavailable=4, partitions=partitions, min_available=minimum)
    assert floor.choose(["a", "b", "e", "f"], unavailable=set()) == ["a", "e"]
    assert floor.choose(["a", "b", "e"], unavailable={"d"}) == ["e"]
    with pytest.raises(FloorOptionError, match="no partition 'gpx'"):
        parse_min_available(["gpx=50%"], partitions)
    with pytest.raises(FloorOptionError, match="PARTITION=P%"):
        parse_min_available(["gpu"], partitions)


def test_bad_options_are_one_line_errors(tmp_path: Path, cli: CLI) -> None:
    inventory = tmp_path / "lab.yaml"
    inventory.write_text(render_lab_inventory(4, tmp_path))
    for args, message in ((["--max-unavailable", "zero"], "--max-unavailable 'zero'"),
                          (["--min-available", "nope=5%"], "no partition 'nope'"),
                          (["--drain-timeout", "soon"], "--drain-timeout"),
                          (["--max-failures", "0"], "--max-failures")):
        code, _, err = cli("maintain", str(inventory), "--yes", *args)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
    code, _, err = cli("maintain", str(inventory))
    assert code == 2 and "pass --yes" in err, err
