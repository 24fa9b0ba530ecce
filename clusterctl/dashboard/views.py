"""The dashboard's read model: what each page and API endpoint shows, built from the store and the inventory.

Only reads. Fleet-wide views are a handful of set-based queries (never one query per node), so
the fleet of 12,500 nodes costs the same number of round trips as a fleet of four. The inventory
says where a node is (hall, rack) and what it should run; the store says what happened to it.
Nothing here returns a secret: inventory facts go through an allow-list (`_node_facts`).
"""

from __future__ import annotations

import re
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from clusterctl.dashboard import states
from clusterctl.dashboard.states import NodeFacts
from clusterctl.errors import StateError
from clusterctl.monitor import names
from clusterctl.state import schema
from clusterctl.state.schema import CheckStatus, StageStatus

if TYPE_CHECKING:
    from clusterctl.inventory.site import Inventory, Node
    from clusterctl.state.store import Store

UNPLACED = "(not in inventory)"
EVENT_PAGE = 200
MAX_POINTS = 2_000  # per chart series: more than a chart's width in pixels
LOSS_ROWS = 200_000
POINT_LABELS = frozenset({"step"})
FRESH_S = 900.0  # a reading older than this is not "the current" power or temperature


class NotFound(LookupError):
    """The page or API asked for a node, rack or run the store and inventory do not know."""


class ReadModel:
    """Reads for the dashboard; one per app, shared by pages, API and metrics."""

    def __init__(self, store: Store, inventory: Inventory | None) -> None:
        self.store = store
        self.inventory = inventory

    def _rows(self, query: sa.Executable) -> list[Any]:
        try:
            with self.store.engine.connect() as conn:
                return list(conn.execute(query))
        except sa.exc.DBAPIError as exc:
            raise StateError(f"cannot read the state store {self.store.url}: {exc.orig or exc}") from exc

    # -- fleet --------------------------------------------------------------------------------------------

    def node_facts(self, only: list[str] | None = None) -> dict[str, NodeFacts]:
        """Every node the inventory or the store knows (or just `only`), with what decides its state."""
        facts: dict[str, NodeFacts] = defaultdict(NodeFacts)
        if only is not None:
            for name in only:
                facts[name]  # noqa: B018 - creates the entry
        elif self.inventory is not None:
            for name in self.inventory.nodes:
                facts[name]  # noqa: B018 - creates the entry: an untouched inventory node is "unknown"

        def among(query: Any, column: Any) -> Any:
            return query if only is None else query.where(column.in_(only))

        ns = schema.node_stages
        for (node,) in self._rows(among(sa.select(ns.c.node).distinct(), ns.c.node)):
            facts[node].staged = True
        open_rows = self._rows(among(
            sa.select(ns.c.node, ns.c.stage, ns.c.status)
            .where(ns.c.status.in_([StageStatus.failed.value, StageStatus.running.value, StageStatus.pending.value]))
            .order_by(ns.c.event_id), ns.c.node))
        for node, stage, status in open_rows:
            f = facts[node]
            if status == StageStatus.failed.value:
                f.failed_stage = f.failed_stage or stage
            else:
                f.active_stage = stage  # the latest stage reached wins
        for node, status in self._latest_check_status(only):
            if status == "fail":
                facts[node].check_fail = True
            elif status == "warn":
                facts[node].check_warn = True
        for (node,) in self._latest_burnin_failures(only):
            facts[node].burnin_fail = True
        nf = schema.node_flags
        for (node,) in self._rows(among(sa.select(nf.c.node).where(nf.c.quarantined.is_(True)), nf.c.node)):
            facts[node].quarantined = True
        return facts

    def _latest_check_status(self, only: list[str] | None) -> list[Any]:
        """(node, status) of each check whose latest result is a warn or a fail (indexes: schema.checks)."""
        c, newer = schema.checks, schema.checks.alias("newer")
        query = sa.select(c.c.node, c.c.status).where(
            c.c.status.in_([CheckStatus.warn.value, CheckStatus.fail.value]),
            ~sa.exists().where(newer.c.node == c.c.node, newer.c.check == c.c.check, newer.c.id > c.c.id))
        if only is not None:
            query = query.where(c.c.node.in_(only))
        return self._rows(query)

    def _latest_burnin_failures(self, only: list[str] | None) -> list[Any]:
        b = schema.burnin_results
        latest = sa.select(sa.func.max(b.c.id).label("id")).group_by(b.c.node)
        if only is not None:
            latest = latest.where(b.c.node.in_(only))
        newest = latest.subquery()
        return self._rows(
            sa.select(b.c.node).join(newest, b.c.id == newest.c.id).where(b.c.status.notin_(["pass", "passed"]))
        )

    def fleet(self) -> dict[str, Any]:
        facts = self.node_facts()
        counts = dict.fromkeys(states.ORDER, 0)
        halls: dict[str, list[dict[str, Any]]] = {}

        def cells(nodes: Iterable[str]) -> list[list[Any]]:
            out = []
            for name in nodes:
                f = facts[name]
                state = f.state()
                counts[state] += 1
                out.append([name, state, f.stage()])
            return out

        known: Mapping[str, Any] = {}
        if self.inventory is not None:
            known = self.inventory.nodes
            for rack in self.inventory.racks.values():  # inventory order: racks and slots as laid out
                halls.setdefault(rack.hall, []).append(
                    {"name": rack.name, "power_budget_w": rack.power_budget_w, "nodes": cells(rack.nodes)}
                )
        strays = [name for name in facts if name not in known]
        if strays:
            halls[UNPLACED] = [{"name": UNPLACED, "power_budget_w": None, "nodes": cells(_natural(strays))}]
        run = self.store.latest_run()
        progress = None
        if run is not None:
            progress = {stage: dict(c) for stage, c in self.store.stage_summary(run.id).items()}
        return {
            "generated_at": time.time(),
            "total": len(facts),
            "counts": counts,
            "run": run.as_dict() if run else None,
            "progress": progress,
            "halls": [{"name": hall, "racks": racks} for hall, racks in halls.items()],
            "last_event_id": self.store.last_event_id(),
            "controllers": self._controllers(),
        }

    def _controllers(self) -> list[dict[str, Any]]:
        from clusterctl.inventory.hostlist import fold
        from clusterctl.state.node_leases import controllers

        return [{"controller": c["controller"], "job": c["job"], "run": c["run"], "heartbeat_at": c["heartbeat_at"],
                 "holding": len(c["nodes"]), "nodes": fold(c["nodes"])} for c in controllers(self.store)]

    # -- rack ---------------------------------------------------------------------------------------------

    def rack(self, name: str) -> dict[str, Any]:
        rack = self.inventory.racks.get(name) if self.inventory is not None else None
        if rack is None:
            raise NotFound(f"no rack {name!r} in the inventory")
        facts = self.node_facts(rack.nodes)
        latest = self.latest_values(rack.nodes, [names.POWER_WATTS, names.INLET_CELSIUS, names.EXHAUST_CELSIUS])
        nodes = []
        for node in rack.nodes:
            f = facts.get(node, NodeFacts())
            values = latest.get(node, {})
            nodes.append({"name": node, "state": f.state(), "stage": f.stage(),
                          "power_watts": values.get(names.POWER_WATTS),
                          "inlet_celsius": values.get(names.INLET_CELSIUS),
                          "exhaust_celsius": values.get(names.EXHAUST_CELSIUS)})
        powers = [n["power_watts"] for n in nodes if n["power_watts"] is not None]
        return {
            "name": rack.name, "hall": rack.hall, "row": rack.row,
            "power_budget_w": rack.power_budget_w, "cooling_w": rack.cooling_w,
            "power_watts": sum(powers) if powers else None,
            "power_reporting": len(powers),
            "nodes": nodes,
        }

    def latest_values(self, nodes: Iterable[str] | None, metrics: list[str]) -> dict[str, dict[str, float | None]]:
        """{node: {metric: value}} of the newest sample no older than FRESH_S; `nodes` None means every node.

        The window keeps a stale reading from passing for the current one, skips compacted rows (whose
        ids are newer than their times), and bounds the rows scanned per request.
        """
        t = schema.telemetry
        newest = sa.select(sa.func.max(t.c.id).label("id")).where(t.c.metric.in_(metrics),
                                                                  t.c.ts >= time.time() - FRESH_S)
        if nodes is not None:
            newest = newest.where(t.c.node.in_(list(nodes)))
        newest_q = newest.group_by(t.c.node, t.c.metric).subquery()
        out: dict[str, dict[str, float | None]] = defaultdict(dict)
        for node, metric, value in self._rows(
            sa.select(t.c.node, t.c.metric, t.c.value).join(newest_q, t.c.id == newest_q.c.id)
        ):
            out[node][metric] = value
        return out

    # -- node ---------------------------------------------------------------------------------------------

    def node(self, name: str) -> dict[str, Any]:
        inv = self.inventory.nodes.get(name) if self.inventory is not None else None
        stages = [s.as_dict() for s in self.store.node_stages(name)]
        checks = self.store.checks(name)
        flag = next((f.as_dict() for f in self.store.flags() if f.node == name), None)
        burnin = self._burnin_of(name)
        if inv is None and not stages and not checks and not burnin and flag is None and not self._has_telemetry(name):
            raise NotFound(f"no node {name!r} in the inventory or the state store")
        facts = self.node_facts([name])[name]
        latest: dict[str, Any] = {}
        for c in checks:
            latest[c.check] = c
        return {
            "name": name,
            "state": facts.state(),
            "stage": facts.stage(),
            "inventory": _node_facts(inv) if inv else None,
            "stages": stages,
            "checks": [_check_view(c) for c in sorted(latest.values(), key=lambda c: (c.status == "pass", c.check))],
            "check_history": len(checks),
            "firmware": self._firmware(inv, stages),
            "flag": flag,
            "burnin": burnin,
            "metrics": self._metrics_of(name),
            "events": [e.as_dict() for e in self.store.events(node=name, limit=EVENT_PAGE, newest=True)],
        }

    def _has_telemetry(self, name: str) -> bool:
        t = schema.telemetry
        return bool(self._rows(sa.select(t.c.id).where(t.c.node == name).limit(1)))

    def _metrics_of(self, name: str) -> list[str]:
        t = schema.telemetry
        return sorted(m for (m,) in self._rows(sa.select(t.c.metric).where(t.c.node == name).distinct()))

    def _burnin_of(self, name: str) -> list[dict[str, Any]]:
        b = schema.burnin_results
        rows = self._rows(sa.select(b).where(b.c.node == name).order_by(b.c.id.desc()).limit(20))
        return [dict(r._mapping) for r in rows]

    @staticmethod
    def _firmware(inv: Node | None, stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Targets from the inventory against what the firmware stage last reported.

        The provision stage writes `versions` (already at target) or `updated` (brought to target) in
        its detail, each {component: version}; `installed` is read too, for a stage that reports as found.
        """
        seen: dict[str, Any] = {}
        for s in stages:
            detail = s.get("detail")
            if s["stage"].startswith("firmware") and isinstance(detail, dict):
                for key in ("installed", "versions", "updated"):
                    versions = detail.get(key)
                    if isinstance(versions, dict):
                        seen.update({str(k): v for k, v in versions.items()})
        targets = dict(inv.firmware) if inv else {}
        rows = []
        for component in sorted(set(targets) | set(seen)):
            want = targets[component].version if component in targets else None
            have = seen.get(component)
            rows.append({"component": component, "target": want, "installed": have,
                         "ok": None if have is None or want is None else str(have) == want})
        return rows

    def telemetry(self, node: str, metric: str, since: float | None = None) -> dict[str, Any]:
        series: dict[str, dict[str, Any]] = {}
        for s in self.store.telemetry(node, metric, since):
            # A label that numbers the points (a burn-in `step`) is the x axis, not a series of its own.
            labels = {k: v for k, v in (s.labels or {}).items() if k not in POINT_LABELS} or None
            label = ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or metric
            series.setdefault(label, {"label": label, "labels": labels, "points": []})["points"].append(
                [s.ts, s.value]
            )
        for one in series.values():
            one["points"] = one["points"][-MAX_POINTS:]
        return {"node": node, "metric": metric, "series": list(series.values())}

    # -- runs ---------------------------------------------------------------------------------------------

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.store.runs(limit)]

    def burnin_run(self, run_id: int) -> dict[str, Any]:
        run = self.store.run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id} in the state store")
        results = self.store.burnin(run_id)
        latest = {r.node: r for r in results}
        throughput = [
            (r.node, float(r.metrics["local_tokens_per_s"]))
            for r in latest.values()
            if isinstance(r.metrics, dict) and isinstance(r.metrics.get("local_tokens_per_s"), int | float)
        ]
        speeds = [v for _n, v in throughput]
        median = statistics.median(speeds) if speeds else None
        return {
            "run": run.as_dict(),
            "results": [{"node": r.node, "status": r.status, "reasons": r.reasons, "metrics": r.metrics}
                        for r in latest.values()],
            "counts": dict(sorted(_count(r.status for r in latest.values()).items())),
            "throughput": {"median": median, "nodes": [{"node": n, "tokens_per_s": v,
                                                         "ratio": (v / median) if median else None}
                                                        for n, v in throughput]},
            "loss": self._loss_curves(run_id, list(latest)),
            "quarantined": [f.as_dict() for f in self.store.flags(quarantined_only=True) if f.node in latest],
        }

    def _loss_curves(self, run_id: int, nodes: list[str]) -> list[dict[str, Any]]:
        """Per node, the mean loss over its ranks at each step, from the `burnin.loss` telemetry."""
        if not nodes:
            return []
        t = schema.telemetry
        rows = self._rows(
            sa.select(t.c.node, t.c.value, t.c.labels)
            .where(t.c.metric == "burnin.loss", t.c.node.in_(nodes[:1000]))
            .order_by(t.c.id).limit(LOSS_ROWS)
        )
        steps: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for node, value, labels in rows:
            if value is None or not isinstance(labels, dict) or labels.get("run") != run_id:
                continue
            step = labels.get("step")
            if isinstance(step, int):
                steps[node][step].append(value)
        return [{"node": node, "points": [[s, statistics.fmean(v)] for s, v in sorted(by_step.items())]}
                for node, by_step in sorted(steps.items())]

    # -- events -------------------------------------------------------------------------------------------

    def events(self, after: int = 0, *, node: str | None = None, kind: str | None = None,
               stage: str | None = None, run_id: int | None = None, limit: int = EVENT_PAGE) -> dict[str, Any]:
        """The newest `limit` events (after=0), or the next ones after an id, oldest first."""
        found = self.store.events(after, node=node, kind=kind, stage=stage, run_id=run_id, limit=limit,
                                  newest=after == 0)
        last = found[-1].id if found else max(after, self.store.last_event_id() if after == 0 else after)
        return {"events": [e.as_dict() for e in found], "last_id": last}


def _node_facts(node: Node) -> dict[str, Any]:
    """What the node page may show of the inventory: names, places, hardware, versions; no credentials."""
    return {
        **node.summary(),
        "hall": node.hall,
        "row": node.row,
        "slot": node.slot,
        "hardware": node.hardware.model_dump(),
        "software": node.software.model_dump(),
        "bios_profile": node.bios_profile,
        "source": node.source,
    }


def _check_view(check: Any) -> dict[str, Any]:
    data = check.data if isinstance(check.data, dict) else {}
    hint = data.get("hint") or data.get("remediation")
    return {"check": check.check, "status": check.status, "detail": check.detail, "hint": hint,
            "run_id": check.run_id, "ts": check.ts, "data": check.data}


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for v in values:
        out[v] += 1
    return dict(out)


def _natural(names_: Iterable[str]) -> list[str]:
    """gpu2 before gpu10, the way racks are labelled."""

    def key(text: str) -> list[Any]:
        return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]

    return sorted(names_, key=key)
