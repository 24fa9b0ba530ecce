"""Schemathesis against the OpenAPI document: bounded generated requests, no 500s, responses match the schema.

Driven through Hypothesis directly: schemathesis' pytest plugin does not run under pytest 9 yet
(`'Function' object has no attribute '_nodeid'`).
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from dashboard_support import AUTH, REPO, TOKEN, fill  # type: ignore[import-not-found]
from hypothesis import HealthCheck, given, settings

from clusterctl.dashboard.app import create_app
from clusterctl.dashboard.auth import Token
from clusterctl.inventory import load_inventory
from clusterctl.state.store import Store

EXAMPLES = 15


def test_api_never_errors_and_matches_its_schema(tmp_path: Path) -> None:
    inventory = load_inventory(REPO / "inventories" / "lab.yaml")
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        fill(store, list(inventory.nodes))
        app = create_app(store, inventory, Token(TOKEN, "test"))
        schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, headers=AUTH)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/api/v1/fleet", "/api/v1/nodes/{node}", "/api/v1/events"}
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def check(case: schemathesis.Case) -> None:
                response = case.call_and_validate(headers=AUTH)
                assert response.status_code < 500

            check()


def test_real_answers_match_the_documented_shapes(tmp_path: Path) -> None:
    """Random requests mostly meet 404s; these ask for what exists and hold the answers to the schemas."""
    import asyncio

    import httpx

    from clusterctl.dashboard import schemas

    inventory = load_inventory(REPO / "inventories" / "lab.yaml")
    nodes = list(inventory.nodes)

    async def fetch(app: object, paths: list[str]) -> dict[str, httpx.Response]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://dashboard", headers=AUTH) as http:
            return {path: await http.get(path) for path in paths}

    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        fleet = fill(store, nodes)
        shapes = {
            "/api/v1/fleet": schemas.FleetOverview,
            f"/api/v1/nodes/{nodes[4]}": schemas.Node,
            f"/api/v1/nodes/{nodes[6]}": schemas.Node,
            "/api/v1/racks/lab-r01": schemas.Rack,
            f"/api/v1/runs/{fleet.burnin_run}/burnin": schemas.Burnin,
            f"/api/v1/nodes/{nodes[0]}/telemetry?metric=burnin.loss": schemas.Telemetry,
            "/api/v1/events?limit=50": schemas.Events,
            "/api/v1/runs": None,
        }
        answers = asyncio.run(fetch(create_app(store, inventory, Token(TOKEN, "test")), list(shapes)))
    for path, shape in shapes.items():
        assert answers[path].status_code == 200, path
        if shape is not None:
            shape.model_validate_json(answers[path].content)
    runs = [schemas.Run.model_validate(r) for r in answers["/api/v1/runs"].json()]
    assert [r.id for r in runs] == [fleet.burnin_run, fleet.provision_run]
    loss = answers[f"/api/v1/nodes/{nodes[0]}/telemetry?metric=burnin.loss"]
    assert len(schemas.Telemetry.model_validate_json(loss.content).series[0].points) == 5
