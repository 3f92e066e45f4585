"""Property-based runs over the whole OpenAPI document with two firms.

Fast (every operation, a few fuzzed cases, derandomized): Acme owns one of
everything; Globex's admin calls each operation with Acme's ids in the
path and in the body's references. No 5xx, every answer as documented,
never a 2xx that reaches Acme's objects, Acme's rows unchanged, and every
list Globex reads is empty (Globex owns nothing).

Slow (``-m slow``): stateful along OpenAPI links (the served document has
none; the test adds create -> get/patch/delete/... links): objects Acme
creates are then reached by every linked operation, first as Globex
(never a 2xx), then as Acme.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.routes import changed_tables, firm_rows, make_world, snapshot

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Body fields that name another object, and the kind of object they name.
REFERENCES = {
    "workflow": "workflow_id",
    "contact": "contact_id",
    "contact_id": "contact_id",
    "source_node": "node_pk",
    "target_node": "node_pk",
    "goal_node": "node_pk",
    "list": "list_id",
    "assignee": "user_id",
}
# Lists of shared, not firm-owned, things: the template gallery, the REST hook samples.
SHARED_LISTS = {"/api/v1/automation/templates/", "/api/v1/hooks/samples/{event}/"}


def _document() -> dict:
    from app.api import load_endpoints
    from app.api.openapi import openapi_document

    load_endpoints()
    return openapi_document()


schema = schemathesis.openapi.from_dict(_document())
# Fuzzing only: the coverage phase runs in tests/api/test_schemathesis.py.
schema.config.phases.update(phases=["fuzzing"])
# The caller's token is ours to set: no generated (missing/garbage) credentials.
schema.config.generation.update(with_security_parameters=False)


@pytest.fixture
def acme_world(acme, alice):
    """Acme's objects and a snapshot of every table, built on first use."""
    cache: dict = {}

    def get() -> tuple[dict, dict]:
        if "ids" not in cache:
            cache["ids"] = make_world(acme, admin=alice) | {"firm_id": acme.id}
            cache["before"] = snapshot()
        return cache["ids"], cache["before"]

    return get


def _aim_at(case, ids: dict) -> bool:
    """Point the case's path ids and body references at Acme's objects;
    True when it names any."""
    named = False
    for name in case.path_parameters or {}:
        if name in ids and name != "firm_id":
            case.path_parameters[name] = ids[name]
            named = named or name not in ("key", "number", "event")
    if isinstance(case.body, dict):
        for field, kind in REFERENCES.items():
            if field in case.body:
                case.body[field] = ids[kind]
                named = True
    return named


@schema.parametrize()
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_another_firm_gets_nothing_of_acmes_from_any_operation(
    app, case, acme_world, charlie, token_for
):
    ids, before = acme_world()
    named = _aim_at(case, ids)
    response = case.call_and_validate(app=app, headers=token_for(charlie), checks=CHECKS)
    status = response.status_code
    if named:
        assert not 200 <= status < 300, (case.method, case.formatted_path, status, response.text)
    elif case.method == "GET" and status == 200 and case.path not in SHARED_LISTS:
        assert response.json().get("results", []) == [], (case.formatted_path, response.text)
    # Globex may create its own objects; Acme's rows never change. (Reads
    # are not snapshotted: a table scan per GET would double the run.)
    if case.method != "GET":
        firm = ids["firm_id"]
        after = firm_rows(snapshot(), firm)
        assert changed_tables(firm_rows(before, firm), after) == {}, (
            case.method,
            case.formatted_path,
        )


def _with_links(document: dict) -> dict:
    """The document plus OpenAPI links from each create (201 with an
    ``id``) to the operations on the created object, so the stateful run
    chains them: POST /contacts/ -> GET/PATCH/DELETE /contacts/{contact_id}/."""
    import copy
    import re

    document = copy.deepcopy(document)
    paths = document["paths"]
    for base, operations in paths.items():
        created = operations.get("post", {}).get("responses", {}).get("201")
        if created is None or "{" in base:
            continue
        links = {}
        for path, targets in paths.items():
            match = re.fullmatch(re.escape(base) + r"\{(\w+)\}/.*", path)
            if not match:
                continue
            for target in targets.values():
                rest = set(re.findall(r"\{(\w+)\}", path)) - {match.group(1)}
                if rest:  # a second id the create does not give
                    continue
                links[target["operationId"]] = {
                    "operationId": target["operationId"],
                    "parameters": {match.group(1): "$response.body#/id"},
                }
        if links:
            created["links"] = links
    return document


@pytest.mark.slow
def test_created_objects_followed_along_the_links_stay_out_of_another_firms_reach(
    app, acme, alice, charlie, token_for
):
    """Stateful, along the links :func:`_with_links` adds: each create is
    generated and sent as Acme (a few positive bodies each); every
    operation linked from it is generated for the new id and sent first
    as Globex (never a 2xx, never a 5xx, as documented), then as Acme (as
    documented). Generation is derandomized; the database carries state
    from step to step, which hypothesis' own state machine cannot replay."""
    import warnings

    from hypothesis.errors import NonInteractiveExampleWarning

    world = make_world(acme, admin=alice) | {"firm_id": acme.id}
    acme_headers, globex_headers = token_for(alice), token_for(charlie)
    linked = schemathesis.openapi.from_dict(_with_links(_document()))
    linked.config.generation.update(with_security_parameters=False, modes=["positive"])
    document = _with_links(_document())
    by_id = {
        target["operationId"]: (path, method)
        for path, targets in document["paths"].items()
        for method, target in targets.items()
    }
    figures = {"creates": 0, "created": 0, "probes": 0, "acme": 0}

    def examples(path: str, method: str, count: int) -> list:
        strategy = linked[path][method.upper()].as_strategy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonInteractiveExampleWarning)
            return [strategy.example() for _ in range(count)]

    for path, operations in document["paths"].items():
        created = operations.get("post", {}).get("responses", {}).get("201", {})
        if "links" not in created:
            continue
        for case in examples(path, "post", 4):
            _aim_at(case, world)
            response = case.call_and_validate(app=app, headers=acme_headers, checks=CHECKS)
            figures["creates"] += 1
            if response.status_code != 201:
                continue
            figures["created"] += 1
            new_id = response.json()["id"]
            for link in created["links"].values():
                target_path, target_method = by_id[link["operationId"]]
                (name,) = link["parameters"]
                for step in examples(target_path, target_method, 2):
                    _aim_at(step, world)
                    step.path_parameters[name] = new_id
                    probe = step.call_and_validate(app=app, headers=globex_headers, checks=CHECKS)
                    figures["probes"] += 1
                    assert not 200 <= probe.status_code < 300, (
                        step.method,
                        step.formatted_path,
                        probe.status_code,
                    )
                    step.call_and_validate(app=app, headers=acme_headers, checks=CHECKS)
                    figures["acme"] += 1
    print(f"\nlinked two-firm run: {figures}")
    assert figures["created"] >= 10
    assert figures["probes"] >= 50
