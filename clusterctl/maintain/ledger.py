"""Where every node of a rollout is, as events in the state store (`maintain.<state>`).

The event is written before the side effect it announces (`draining` before the drain,
`resuming` before the resume), so a run killed at any instant leaves no node drained without
a record of why, and the next run knows which nodes it holds. `pause`, `resume` and `abort`
from another terminal are `maintain.control` events the running rollout reads between steps.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clusterctl.state.store import Store

PREFIX = "maintain."
STAGE = "maintain"
CONTROL = "maintain.control"
ACTIONS = ("pause", "resume", "abort")
HELD = frozenset({"draining", "forcing", "drained", "updating", "updated", "validating", "burnin", "resuming",
                  "aborted"})
"""States in which this rollout holds the node out of service and must bring it back."""
FINAL = frozenset({"resumed", "failed", "skipped"})


@dataclass(frozen=True)
class NodeState:
    node: str
    state: str
    since: float
    reason: str | None
    run_id: int | None
    event_id: int

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "state": self.state, "since": self.since, "reason": self.reason,
                "run": self.run_id}


def record(store: Store, node: str, state: str, *, run_id: int | None, reason: str | None = None,
           **payload: Any) -> None:
    with store.transaction() as tx:
        tx.event(PREFIX + state, node=node, stage=STAGE, run_id=run_id,
                 payload={"state": state, "reason": reason, **payload})


def last_states(store: Store, nodes: Iterable[str] | None = None) -> dict[str, NodeState]:
    """Each node's newest maintenance state, over every rollout this store has seen."""
    names = list(nodes) if nodes is not None else None
    found: dict[str, NodeState] = {}
    for e in store.events(0, node=names if names is not None and len(names) < 500 else None, stage=STAGE):
        if not e.kind.startswith(PREFIX) or e.kind == CONTROL or e.node is None:
            continue
        if names is not None and e.node not in names:
            continue
        payload = e.payload if isinstance(e.payload, dict) else {}
        found[e.node] = NodeState(e.node, e.kind[len(PREFIX):], e.ts, payload.get("reason"), e.run_id, e.id)
    return found


def time_in_states(store: Store, nodes: Iterable[str] | None = None, *,
                   now: float | None = None) -> dict[str, dict[str, float]]:
    """{node: {state: seconds spent in it}}, over every rollout; the current state counts until `now`
    (a final state, resumed or failed, counts nothing: the node is no longer in the rollout)."""
    names = set(nodes) if nodes is not None else None
    now = time.time() if now is None else now
    entered: dict[str, tuple[str, float]] = {}
    spent: dict[str, dict[str, float]] = {}
    for e in store.events(0, stage=STAGE):
        if not e.kind.startswith(PREFIX) or e.node is None or (names is not None and e.node not in names):
            continue
        if e.node in entered:
            state, since = entered[e.node]
            spent.setdefault(e.node, {})
            spent[e.node][state] = spent[e.node].get(state, 0.0) + e.ts - since
        entered[e.node] = (e.kind[len(PREFIX):], e.ts)
    for node, (state, since) in entered.items():
        spent.setdefault(node, {})
        if state not in FINAL:
            spent[node][state] = spent[node].get(state, 0.0) + now - since
    return {node: {k: round(v, 2) for k, v in states.items()} for node, states in spent.items()}


def control(store: Store, action: str, *, note: str | None = None) -> None:
    with store.transaction() as tx:
        tx.event(CONTROL, payload={"action": action, "note": note, "at": time.time()})


def current_control(store: Store, after_id: int = 0) -> str | None:
    """The newest of pause/resume/abort written after `after_id`, or None."""
    found = store.events(after_id, kind=CONTROL, limit=1, newest=True)
    if not found or not isinstance(found[0].payload, dict):
        return None
    return found[0].payload.get("action")
