"""Oversized and absurd input: a 10 MB body, JSON nested 10,000 deep,
values nested past 64 levels, a 10,000-step workflow, a loop without a
wait. Each is a clear 4xx naming what is wrong, or (the loop) a runaway
stop when it runs; the process's memory stays bounded throughout.

The body sweeps are generated from ``url_map``: every write route, as a
user who may call it (bearer token for the API, session + CSRF token for
pages, nobody for public routes).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from app.extensions import db
from app.models import Form, WorkflowExecution, WorkflowNode
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow
from tests.security.routes import CSRF_EXEMPT, PUBLIC, WRITE_METHODS, csrf_header, make_world
from tests.security.routes import routes as all_routes

TEN_MB = 10 * 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """Resident set size of this process, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def deep_json(depth: int, leaf: str = '"x"') -> str:
    return '{"k":' * depth + leaf + "}" * depth


def _api_bodies() -> set[tuple[str, str]]:
    from app.api import load_endpoints

    return {("/api/v1" + ep.rule, ep.method) for ep in load_endpoints() if ep.body is not None}


def _signed_in(app, client, auth, user, token_for, firm):
    ids = make_world(firm, admin=user)
    with firm_context(firm.id):
        form = Form(name="Signup", fields=[{"name": "email", "type": "email", "required": True}])
        db.session.add(form)
        db.session.commit()
        ids |= {"form_key": form.form_key, "token": "junk"}
    assert auth.login(user).status_code == 302
    return ids, token_for(user), csrf_header(app, client)


def _writes(app):
    return [r for r in all_routes(app) if r.method in WRITE_METHODS]


def _headers(route, token, csrf):
    if route.is_api:
        return token
    return {} if route.endpoint in PUBLIC else csrf


def test_a_10_mb_body_is_refused_with_413_by_every_route_that_reads_one(
    app, client, auth, acme, alice, token_for
):
    ids, token, csrf = _signed_in(app, client, auth, alice, token_for, acme)
    reads_body = _api_bodies()
    big = b"x" * TEN_MB
    start, before = time.perf_counter(), rss()
    sent, refused, wrong = 0, 0, {}
    for route in _writes(app):
        is_json = route.is_api or route.endpoint in CSRF_EXEMPT
        kind = "application/json" if is_json else "application/x-www-form-urlencoded"
        response = client.open(
            route.url(ids),
            method=route.method,
            data=big,
            headers=_headers(route, token, csrf) | {"Content-Type": kind},
        )
        sent += 1
        refused += response.status_code == 413
        # A route that reads a body must refuse this one; the rest ignore it.
        must_refuse = (route.rule, route.method) in reads_body or (
            not route.is_api and route.endpoint not in PUBLIC
        )
        if response.status_code >= 500 or (must_refuse and response.status_code != 413):
            wrong[str(route)] = response.status_code
        if route.is_api and response.status_code == 413:
            assert response.json["error"]["code"] == "payload_too_large"
    grown = rss() - before
    assert wrong == {}
    # 10 MB per request: keeping any of them would show here.
    assert grown < 100 * 1024 * 1024, f"RSS grew {grown // 2**20} MB"
    print(
        f"\n10 MB bodies: {sent} routes, {refused} refused with 413, RSS +{grown // 2**20} MB, "
        f"{time.perf_counter() - start:.1f} s"
    )
    assert refused >= 80


def test_a_streamed_body_without_a_length_is_cut_at_the_limit_too(
    app, client, auth, acme, alice, token_for
):
    """Chunked uploads carry no Content-Length: the limit applies while
    reading, for the API and for pages alike."""
    import io

    from werkzeug.test import EnvironBuilder

    def streamed(path: str, headers: dict, data: bytes) -> dict:
        environ = EnvironBuilder(
            path=path, method="POST", headers=headers, input_stream=io.BytesIO(data)
        ).get_environ()
        environ.pop("CONTENT_LENGTH", None)
        environ["wsgi.input_terminated"] = True
        return environ

    big = b'{"email": "' + b"x" * TEN_MB + b'"}'
    json_headers = token_for(alice) | {"Content-Type": "application/json"}
    response = client.open(streamed("/api/v1/contacts/", json_headers, big))
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"
    assert auth.login(alice).status_code == 302
    form = csrf_header(app, client) | {"Content-Type": "application/x-www-form-urlencoded"}
    response = client.open(streamed("/contacts/new", form, b"email=" + b"x" * TEN_MB))
    assert response.status_code == 413


def test_json_nested_10000_deep_is_a_400_wherever_json_is_read(
    app, client, auth, acme, alice, token_for
):
    ids, token, csrf = _signed_in(app, client, auth, alice, token_for, acme)
    reads_body = _api_bodies()
    nested = "[" * 10_000 + "]" * 10_000
    sent, wrong = 0, {}
    for route in _writes(app):
        response = client.open(
            route.url(ids),
            method=route.method,
            data=nested,
            headers=_headers(route, token, csrf) | {"Content-Type": "application/json"},
        )
        sent += 1
        # Every route: no 5xx; a route that parses a JSON body: 400.
        parses = (route.rule, route.method) in reads_body
        if response.status_code >= 500 or (parses and response.status_code != 400):
            wrong[str(route)] = response.status_code
    assert wrong == {}
    print(f"\n10,000-deep JSON: {sent} routes, no 5xx")


def test_api_values_nested_past_64_levels_are_refused_naming_the_field(
    client, acme, alice, token_for
):
    headers = token_for(alice) | {"Content-Type": "application/json"}
    contact = make_contact(acme)
    for depth in (100, 500):
        body = f'{{"email": "deep@example.com", "custom_fields": {deep_json(depth)}}}'
        response = client.post("/api/v1/contacts/", data=body, headers=headers)
        assert response.status_code == 400, depth
        assert list(response.json["error"]["fields"]) == ["custom_fields"]
        event = f'{{"type": "api", "contact_id": {contact.id}, "data": {deep_json(depth)}}}'
        response = client.post("/api/v1/events/", data=event, headers=headers)
        assert response.status_code == 400
        assert list(response.json["error"]["fields"]) == ["data"]
    # Past Python's recursion limit the parser itself gives up: still a 400.
    body = f'{{"email": "deep@example.com", "custom_fields": {deep_json(5_000)}}}'
    response = client.post("/api/v1/contacts/", data=body, headers=headers)
    assert response.status_code == 400
    assert "nested too deeply" in response.json["error"]["message"]
    # Ordinary nesting still goes in, and comes back out.
    body = f'{{"email": "ok@example.com", "custom_fields": {deep_json(30)}}}'
    created = client.post("/api/v1/contacts/", data=body, headers=headers)
    assert created.status_code == 201
    assert client.get(f"/api/v1/contacts/{created.json['id']}/", headers=headers).status_code == 200


def test_a_deep_webhook_payload_in_the_builder_is_refused_or_harmless(
    app, client, auth, acme, alice
):
    workflow = make_workflow(
        acme,
        nodes=[
            {
                "node_id": "hook",
                "node_type": "webhook",
                "configuration": {"url": "https://example.com/h"},
            }
        ],
        triggers=[{"trigger_type": "manual"}],
    )
    assert auth.login(alice).status_code == 302
    headers = csrf_header(app, client) | {"HX-Request": "true"}
    for depth in (500, 10_000):
        response = client.post(
            f"/automation/builder/{workflow.id}/nodes/hook",
            data={"url": "https://example.com/h", "payload": deep_json(depth), "method": "POST"},
            headers=headers,
        )
        assert response.status_code < 500, depth
        assert client.get(f"/automation/builder/{workflow.id}").status_code == 200
        assert client.get(f"/automation/builder/{workflow.id}/nodes/hook").status_code == 200


def _ten_thousand_node_document(node_type: str = "goal", **config) -> bytes:
    nodes = [{"node_id": f"n{i}", "node_type": node_type, **config} for i in range(10_000)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(9_999)]
    document = {"name": "Huge", "nodes": nodes, "edges": edges, "triggers": []}
    return json.dumps(document, separators=(",", ":")).encode()


def test_a_10000_step_import_is_refused_naming_the_steps(client, acme, alice, token_for):
    headers = token_for(alice) | {"Content-Type": "application/json"}
    before = rss()
    compact = _ten_thousand_node_document()
    assert len(compact) < 1024 * 1024  # under the body limit: the cap must catch it
    response = client.post("/api/v1/automation/workflows/import/", data=compact, headers=headers)
    assert response.status_code == 422
    assert "nodes" in json.dumps(response.json)
    # The same with real configurations is over the body limit: 413.
    bulky = _ten_thousand_node_document("add_tag", configuration={"tag": "customer"})
    response = client.post("/api/v1/automation/workflows/import/", data=bulky, headers=headers)
    assert response.status_code == 413
    assert rss() - before < 100 * 1024 * 1024
    with firm_context(acme.id):
        assert db.session.query(WorkflowNode).count() == 0


def _bulk_nodes(firm, workflow, count: int) -> None:
    from app.clock import now

    moment = now()
    rows = [
        {
            "firm_id": firm.id,
            "workflow_id": workflow.id,
            "node_id": f"n{i}",
            "node_type": "add_tag",
            "label": f"n{i}",
            "position_x": float(i),
            "position_y": 0.0,
            "configuration": {"tag": "t"},
            "created_at": moment,
            "updated_at": moment,
        }
        for i in range(count)
    ]
    db.session.execute(WorkflowNode.__table__.insert(), rows)
    db.session.commit()


def test_steps_past_the_cap_are_refused_through_the_api_and_the_builder(
    app, client, auth, acme, alice, token_for
):
    from app.automation.validation import MAX_NODES

    workflow = make_workflow(acme, name="Full", triggers=[{"trigger_type": "manual"}])
    _bulk_nodes(acme, workflow, MAX_NODES)
    response = client.post(
        "/api/v1/automation/nodes/",
        json={"workflow": workflow.id, "node_id": "one_more", "node_type": "goal"},
        headers=token_for(alice),
    )
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {
        "workflow": [f"a workflow may have at most {MAX_NODES} steps"]
    }
    assert auth.login(alice).status_code == 302
    response = client.post(
        f"/automation/builder/{workflow.id}/nodes",
        data={"node_type": "goal", "x": "10", "y": "10"},
        headers=csrf_header(app, client) | {"HX-Request": "true"},
    )
    assert 400 <= response.status_code < 500
    assert f"at most {MAX_NODES} steps" in response.get_data(as_text=True)
    with firm_context(acme.id):
        assert db.session.query(WorkflowNode).count() == MAX_NODES


@pytest.mark.parametrize(
    "steps", [pytest.param(501, id="501"), pytest.param(10_000, id="10000", marks=pytest.mark.slow)]
)
def test_an_oversized_workflow_cannot_go_live_and_its_pages_stay_bounded(
    client, auth, acme, alice, token_for, steps
):
    """Written straight to the database (the API and the builder refuse to
    grow a graph that far): activation refuses naming the count, and the
    builder's problem list answers in bounded time and memory. 10,000
    steps took 63 s before the problem list stopped scanning every node
    for every problem."""
    workflow = make_workflow(acme, name="Huge", triggers=[{"trigger_type": "manual"}])
    _bulk_nodes(acme, workflow, steps)
    headers = token_for(alice)
    before, start = rss(), time.perf_counter()
    response = client.post(f"/api/v1/automation/workflows/{workflow.id}/activate/", headers=headers)
    assert response.status_code == 422
    assert "at most 500 steps" in json.dumps(response.json)
    assert auth.login(alice).status_code == 302
    for path in (f"/automation/builder/{workflow.id}/problems", "/automation"):
        assert client.get(path, headers={"HX-Request": "true"}).status_code == 200, path
    elapsed, grown = time.perf_counter() - start, rss() - before
    print(
        f"\n{steps} steps: activation refused, pages in {elapsed:.1f} s, RSS +{grown // 2**20} MB"
    )
    assert elapsed < 20
    assert grown < 200 * 1024 * 1024, f"RSS grew {grown // 2**20} MB"


def test_a_loop_without_a_wait_is_stopped_as_a_runaway(client, acme, alice, token_for):
    """Built and started through the API: add_tag -> update -> add_tag ...
    The engine stops it after ENGINE_MAX_STEPS_WITHOUT_WAIT steps."""
    from app.automation.engine import drain

    api = token_for(alice)
    workflow = client.post("/api/v1/automation/workflows/", json={"name": "Loop"}, headers=api).json
    keys = ["entry", "a", "b"]
    for key in keys:
        created = client.post(
            "/api/v1/automation/nodes/",
            json={
                "workflow": workflow["id"],
                "node_id": key,
                "node_type": "add_tag",
                "configuration": {"tag": key},
            },
            headers=api,
        )
        assert created.status_code == 201, created.json
    pks = {
        n["node_id"]: n["id"]
        for n in client.get(
            f"/api/v1/automation/nodes/?workflow={workflow['id']}", headers=api
        ).json["results"]
    }
    for source, target in (("entry", "a"), ("a", "b"), ("b", "a")):
        edge = client.post(
            "/api/v1/automation/edges/",
            json={
                "workflow": workflow["id"],
                "source_node": pks[source],
                "target_node": pks[target],
            },
            headers=api,
        )
        assert edge.status_code == 201, edge.json
    trigger = client.post(
        "/api/v1/automation/triggers/",
        json={"workflow": workflow["id"], "trigger_type": "manual"},
        headers=api,
    )
    assert trigger.status_code == 201, trigger.json
    activated = client.post(f"/api/v1/automation/workflows/{workflow['id']}/activate/", headers=api)
    contact = make_contact(acme)
    if activated.status_code != 200:
        # Refusing the loop up front is just as good, if it says why.
        assert activated.status_code == 422 and "loop" in json.dumps(activated.json).lower()
        return
    started = client.post(
        f"/api/v1/automation/workflows/{workflow['id']}/trigger/",
        json={"contact_id": contact.id},
        headers=api,
    )
    assert started.status_code in (200, 201, 202), started.json
    begin = time.perf_counter()
    drain()
    elapsed = time.perf_counter() - begin
    with firm_context(acme.id):
        execution = db.session.query(WorkflowExecution).one()
        assert execution.status == "failed"
        assert "without a wait" in (execution.last_error or "")
        steps = len(execution.execution_path or [])
    assert steps <= 201
    assert elapsed < 10
    print(f"\nloop without a wait: stopped after {steps} steps in {elapsed:.2f} s")


def _execution(firm):
    with firm_context(firm.id):
        db.session.expire_all()
        return db.session.query(WorkflowExecution).one()


def test_a_loop_through_a_wait_that_never_waits_is_stopped_at_run_time(acme, alice):
    """A wait on a date already past passes at once, so activation's "every
    loop has a wait" check lets this through: the engine's step cap stops
    it, and the e-mail inside the loop is not sent 100 times."""
    from app.automation.engine import drain
    from app.automation.enrollment import enroll
    from app.models import OutboxMessage

    nodes = [
        {"node_id": "entry", "node_type": "add_tag", "configuration": {"tag": "in"}},
        {
            "node_id": "past",
            "node_type": "wait_until",
            "configuration": {"until": "2020-01-01T00:00:00Z"},
        },
        {
            "node_id": "mail",
            "node_type": "send_email",
            "configuration": {"subject": "Hi", "body_text": "x"},
        },
    ]
    edges = [("entry", "past"), ("past", "mail"), ("mail", "past")]
    workflow = make_workflow(acme, nodes=nodes, edges=edges, triggers=[{"trigger_type": "manual"}])
    with firm_context(acme.id):
        workflow.activate(alice)
        db.session.commit()
        enroll(workflow, [make_contact(acme).id], trigger_type="manual")
    begin = time.perf_counter()
    drain()
    elapsed = time.perf_counter() - begin
    execution = _execution(acme)
    with firm_context(acme.id):
        mails = db.session.query(OutboxMessage).count()
    steps = len(execution.execution_path or [])
    print(
        f"\nloop through a passing wait: {execution.status} after {steps} steps, {mails} e-mails, {elapsed:.2f} s"
    )
    assert execution.status == "failed"
    assert "without a wait" in execution.last_error
    assert mails <= 2
    assert elapsed < 10
