"""Goal: loading and cross-checking a 12,500-node (100,000-GPU) inventory takes under 2 s.

Generates, in a temporary directory, inventories/site.yaml scaled up to 12,500 GPU
nodes in 3,125 racks (5 halls of 25 rows of 25 racks, 4 nodes per rack), then times
`load_inventory` (which includes the cross checks) best of 3.

    .venv/bin/python benchmarks/inventory_scale.py
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 2.0
NODES = 12_500
HALLS = "abcde"
ROWS = 25
RACKS_PER_ROW = 25


def scaled_site() -> str:
    """site.yaml with the compute group and halls scaled up; login and service nodes kept."""
    text = (REPO / "inventories" / "site.yaml").read_text()
    halls = []
    for hall in HALLS:
        rows = "\n".join(
            f'      - {{name: {hall.upper()}{r:02d}, racks: [{{name: "{hall}{r:02d}-r[01-{RACKS_PER_ROW}]", '
            f"power_budget_w: 48000, cooling_w: 50000, max_rebooting: 2}}]}}"
            for r in range(1, ROWS + 1)
        )
        service = (
            '      - {name: A00, racks: [{name: "a00-r[01-02]", power_budget_w: 17300, cooling_w: 20000}]}\n'
            if hall == "a"
            else ""
        )
        halls.append(f"  - name: {hall.upper()}\n    rows:\n{service}{rows}")
    racks = ",".join(f"{h}[01-{ROWS:02d}]-r[01-{RACKS_PER_ROW:02d}]" for h in HALLS)
    replacements = [
        (r"(?ms)^halls:\n.*?^groups:", "halls:\n" + "\n".join(halls) + "\n\ngroups:"),
        (r"nodes: gpu\[0001-2048\]", f"nodes: gpu[00001-{NODES}]"),
        (r'racks: "a\[01-16\]-r\[01-16\],b\[01-16\]-r\[01-16\]"', f'racks: "{racks}"'),
        (r"gpu0007:", "gpu00007:"),
        (r"gpu\[2041-2048\]:", f"gpu[{NODES - 7}-{NODES}]:"),
        (r"10\.10\.0\.0/20", "10.10.0.0/17"),
        (r"10\.10\.15\.250", "10.10.127.250"),  # the override must stay outside the used part of the pool
        (r"10\.20\.0\.0/20", "10.20.0.0/17"),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text)
        if count != 1:
            raise SystemExit(f"site.yaml changed shape: {pattern!r} matched {count} times")
    return text


def main() -> int:
    from clusterctl.inventory import load_inventory

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "site-12500.yaml"
        path.write_text(scaled_site())
        times = []
        for _ in range(3):
            start = time.perf_counter()
            inventory = load_inventory(path)
            times.append(time.perf_counter() - start)
    gpu_nodes = sum(1 for n in inventory.nodes.values() if n.gpus)
    best = min(times)
    print(
        f"inventory: {inventory.node_count} nodes ({gpu_nodes} with GPUs), {inventory.gpu_count} GPUs, "
        f"{inventory.rack_count} racks"
    )
    runs = ", ".join(f"{t:.3f}" for t in times)
    print(f"load_inventory + cross checks, best of 3: {best:.3f} s (runs: {runs})")
    print(f"goal < {GOAL_S:.1f} s: ratio {best / GOAL_S:.2f} ({'met' if best < GOAL_S else 'NOT met'})")
    return 0 if best < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
