"""The API's common behaviour: auth, CSRF, errors, pagination, limits, docs."""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.models import AuditLog, Workflow
from app.tenancy import firm_context
from tests.factories import make_workflow

WORKFLOWS = "/api/v1/automation/workflows/"


def test_it_requires_authentication(client):
    response = client.get(WORKFLOWS)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_it_rejects_an_unknown_token(client):
    response = client.get(WORKFLOWS, headers={"Authorization": "Bearer atk_nope"})
    assert response.status_code == 401


def test_it_refuses_portal_users(api_as, paula):
    response = api_as(paula).get(WORKFLOWS)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


def test_a_token_write_needs_no_csrf_token(api, acme):
    response = api.post(WORKFLOWS, json={"name": "Welcome Campaign"})
    assert response.status_code == 201, response.json
    with firm_context(acme.id):
        assert db.session.get(Workflow, response.json["id"]).name == "Welcome Campaign"


def test_a_session_write_needs_the_csrf_token(client, auth, alice, session_csrf):
    auth.login(alice)
    refused = client.post(WORKFLOWS, json={"name": "No token"})
    assert refused.status_code == 400
    assert refused.json["error"]["code"] == "csrf_failed"
    accepted = client.post(WORKFLOWS, json={"name": "With token"}, headers=session_csrf)
    assert accepted.status_code == 201, accepted.json
    # Reads by session need no token.
    assert client.get(WORKFLOWS).status_code == 200


def test_malformed_json_is_a_400(api, acme):
    response = api.post(WORKFLOWS, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "malformed_json"


def test_a_json_array_body_is_a_400(api, acme):
    response = api.post(WORKFLOWS, json=[1, 2])
    assert response.status_code == 400


def test_missing_and_unknown_fields_are_named(api, acme):
    response = api.post(WORKFLOWS, json={"nmae": "typo"})
    assert response.status_code == 400
    error = response.json["error"]
    assert error["code"] == "validation_error"
    assert error["fields"] == {"name": ["required"], "nmae": ["unknown field"]}


def test_a_body_over_one_mebibyte_is_a_413(api, acme):
    response = api.post(WORKFLOWS, json={"name": "x", "description": "y" * (1024 * 1024 + 10)})
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"


def test_unknown_api_paths_and_methods_answer_json(api, acme):
    missing = api.get("/api/v1/automation/nothing-here/")
    assert missing.status_code == 404
    assert missing.json["error"]["code"] == "not_found"
    wrong_method = api._call("PUT", WORKFLOWS)
    assert wrong_method.status_code == 405
    assert wrong_method.json["error"]["code"] == "method_not_allowed"


def test_another_firms_workflow_is_a_404(api, acme, globex):
    theirs = make_workflow(globex, name="Secret")
    response = api.get(f"{WORKFLOWS}{theirs.id}/")
    assert response.status_code == 404
    assert "Secret" not in response.get_data(as_text=True)


def test_writes_are_audited(api, alice):
    response = api.post(WORKFLOWS, json={"name": "Audited"})
    with firm_context(alice.firm_id):
        entry = db.session.query(AuditLog).filter_by(action="workflow.created").one()
    assert entry.object_id == str(response.json["id"])
    assert entry.actor.startswith("token:")


def test_lists_are_cursor_paginated(api, acme):
    ids = {make_workflow(acme, name=f"W{i}").id for i in range(5)}
    seen: list[int] = []
    url = f"{WORKFLOWS}?limit=2"
    pages = 0
    while url:
        page = api.get(url).json
        pages += 1
        seen += [row["id"] for row in page["results"]]
        url = f"{WORKFLOWS}?limit=2&cursor={page['next']}" if page["next"] else None
    assert pages == 3
    assert seen == sorted(ids, reverse=True)


@pytest.mark.parametrize(
    "query, field",
    [("limit=201", "limit"), ("limit=0", "limit"), ("cursor=%%%", "cursor"), ("bogus=1", "bogus")],
)
def test_bad_list_parameters_are_400s(api, acme, query, field):
    response = api.get(f"{WORKFLOWS}?{query}")
    assert response.status_code == 400
    assert field in response.json["error"]["fields"]


def test_the_openapi_document_describes_the_endpoints(client):
    document = client.get("/api/openapi.json").json
    assert document["openapi"].startswith("3.")
    create = document["paths"]["/api/v1/automation/workflows/"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    # The schema that validates the body: unknown fields are refused.
    assert body_schema["additionalProperties"] is False
    assert "name" in body_schema["required"]
    assert "ErrorBody" in document["components"]["schemas"]


def test_the_docs_page_needs_no_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "/api/v1/automation/workflows/" in page
    assert "<script" not in page
    assert not re.search(r'(src|href)="https?://', page)


def test_writes_are_rate_limited_per_token(database_url, redis_url, acme, alice, token_for):
    """A separate app with limits on (the shared test app has them off)."""
    from app import create_app

    limited = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "test-secret",
            "RATELIMIT_ENABLED": True,
            "INLINE_SCHEDULER": False,
            "API_WRITE_LIMIT_PER_TOKEN": "3/hour",  # a fixed window: no minute edge mid-test
            "API_WRITE_LIMIT_PER_IP": "1000/minute",
        }
    )
    headers = token_for(alice)
    with limited.test_client() as client:
        statuses = [
            client.post(WORKFLOWS, json={"name": f"W{i}"}, headers=headers).status_code
            for i in range(4)
        ]
        assert statuses == [201, 201, 201, 429]
        refused = client.post(WORKFLOWS, json={"name": "again"}, headers=headers)
        assert refused.json["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        # Reads are not limited; another token has its own bucket.
        assert client.get(WORKFLOWS, headers=headers).status_code == 200
        other = client.post(WORKFLOWS, json={"name": "other"}, headers=token_for(alice))
        assert other.status_code == 201


def test_writes_without_a_valid_token_are_limited_per_address(
    database_url, redis_url, acme, alice, token_for
):
    """Unknown tokens from one address are cut at the address's limit; valid
    tokens from that address are not (a backend may feed the API from one
    address with several tokens)."""
    from app import create_app

    limited = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "test-secret",
            "RATELIMIT_ENABLED": True,
            "INLINE_SCHEDULER": False,
            "API_WRITE_LIMIT_PER_TOKEN": "1000/minute",
            "API_WRITE_LIMIT_PER_IP": "2/hour",
        }
    )
    with limited.test_client() as client:
        guesses = [
            client.post(
                WORKFLOWS, json={"name": "x"}, headers={"Authorization": f"Bearer guess{i}"}
            ).status_code
            for i in range(3)
        ]
        valid = [
            client.post(WORKFLOWS, json={"name": f"W{i}"}, headers=token_for(alice)).status_code
            for i in range(3)
        ]
    assert guesses == [401, 401, 429]
    assert valid == [201, 201, 201]
