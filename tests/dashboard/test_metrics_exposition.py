"""/metrics' own text writer against prometheus_client's `generate_latest`, the reference: byte for byte."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from clusterctl.dashboard.metrics import Family

ODD = ['plain', 'quo"te', 'back\\slash', 'new\nline', 'ünïcode', '{braces}', '']
VALUES = [0.0, 1.0, -2.5, 1e-07, 123456.789, 1e16, 12345678.0, math.inf, -math.inf, math.nan, 3]


class Collected:
    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self) -> list:
        return self.families


def test_the_writer_matches_generate_latest_byte_for_byte() -> None:
    ours, theirs = [], []
    for kind, labels in [("gauge", ["node"]), ("gauge", ["node", "rack", "state", "stage"]),
                         ("counter", ["node", "check"]), ("gauge", ["rack", "hall"])]:
        name, doc = f"clusterctl_test_{kind}_{len(labels)}", 'A doc with a back\\slash,\na newline and "quotes".'
        family = Family(name, doc, labels, kind=kind)
        reference = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, doc, labels=labels)
        for i, value in enumerate(VALUES):
            values = [ODD[(i + j) % len(ODD)] for j in range(len(labels))]
            family.add(values, value)
            reference.add_metric(values, value)
        ours.append(family)
        theirs.append(reference)
    empty = Family("clusterctl_test_empty", "Nothing yet.")
    ours.append(empty)
    theirs.append(GaugeMetricFamily("clusterctl_test_empty", "Nothing yet.", labels=["node"]))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collected(theirs))  # type: ignore[arg-type]
    text = "".join(line for f in ours for line in f.lines)
    assert text.encode() == generate_latest(registry)
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    assert {s.labels["node"] for s in parsed["clusterctl_test_gauge_1"].samples} == set(ODD)
    assert parsed["clusterctl_test_counter_2"].samples[0].name == "clusterctl_test_counter_2_total"
