"""Oversized and absurd input: a 10 MB body, JSON nested 10,000 deep,
values nested past 64 levels. Each is a clear 4xx naming what is wrong;
the process's memory stays bounded throughout (oversized workflows and
runaway loops: test_oversized_workflows.py).

The body sweeps are generated from ``url_map``: every write route, as a
user who may call it (bearer token for the API, session + CSRF token for
pages, nobody for public routes).
"""

from __future__ import annotations

import time

from app.extensions import db
from app.models import Form
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow
from tests.security.memory import rss
from tests.security.routes import CSRF_EXEMPT, PUBLIC, WRITE_METHODS, csrf_header, make_world
from tests.security.routes import routes as all_routes

TEN_MB = 10 * 1024 * 1024


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
    # Deletes last: an id whose row a DELETE removed answers 404 before its
    # body is read (issue 22).
    for route in sorted(_writes(app), key=lambda route: route.method == "DELETE"):
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
