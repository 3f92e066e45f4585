"""Saving a webhook checks its URL without DNS (docs/SENDING.md, "Webhooks").

A receiver whose DNS is not live yet, or a DNS hiccup, must not block a
marketer's save: the scheme, the host's form and an address written in
the URL are checked (and refused), a name that does not resolve or
resolves to a private address is saved with a warning (the API's
``warnings``, the inspector's "Saved, but check"), and the send still
resolves, pins and refuses. ``.invalid`` names never resolve (RFC 6761).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.automation.engine.jobs import drain
from app.extensions import db
from app.models import OutboxMessage, WorkflowExecution, WorkflowNode
from app.tenancy import firm_context
from tests.api.conftest import ApiClient
from tests.delivery.conftest import configured
from tests.engine.helpers import active_workflow, start
from tests.factories import make_contact, make_workflow
from tests.security.fake_dns import FakeDns
from tests.web.conftest import HX

NODES = "/api/v1/automation/nodes/"
NOT_LIVE = "https://hooks.not-live-yet.invalid/in"


@pytest.fixture
def api(client, token_for, alice) -> ApiClient:
    return ApiClient(client, token_for(alice))


@pytest.fixture
def dns(monkeypatch):
    return FakeDns(monkeypatch)


@pytest.fixture
def guarded(app):
    with configured(app, WEBHOOK_ALLOW_PRIVATE=False):
        yield


def _webhook_workflow(firm, url="https://example.com/hook"):
    return make_workflow(
        firm, nodes=[{"node_id": "hook", "node_type": "webhook", "configuration": {"url": url}}]
    )


def test_the_api_saves_a_host_that_does_not_resolve_and_warns(api, acme, guarded):
    workflow = _webhook_workflow(acme)
    created = api.post(
        NODES,
        json={
            "workflow": workflow.id,
            "node_id": "later",
            "node_type": "webhook",
            "configuration": {"url": NOT_LIVE},
        },
    )
    assert created.status_code == 201, created.get_json()
    [warning] = created.get_json()["warnings"]["configuration.url"]
    assert "'hooks.not-live-yet.invalid' does not resolve" in warning
    pk = created.get_json()["id"]
    changed = api.patch(f"{NODES}{pk}/", json={"configuration": {"url": NOT_LIVE + "?v=2"}})
    assert changed.status_code == 200, changed.get_json()
    assert "does not resolve" in changed.get_json()["warnings"]["configuration.url"][0]
    assert changed.get_json()["configuration"]["url"] == NOT_LIVE + "?v=2"
    # Reading asks no DNS and says nothing; a label change neither.
    assert api.get(f"{NODES}{pk}/").get_json()["warnings"] == {}
    assert api.patch(f"{NODES}{pk}/", json={"label": "Later"}).get_json()["warnings"] == {}


def test_the_api_warns_about_a_name_that_resolves_to_a_private_address(api, acme, guarded, dns):
    dns.answers["intranet.test"] = ["10.1.2.3"]
    workflow = _webhook_workflow(acme)
    created = api.post(
        NODES,
        json={
            "workflow": workflow.id,
            "node_id": "inside",
            "node_type": "webhook",
            "configuration": {"url": "http://intranet.test/hook"},
        },
    )
    assert created.status_code == 201, created.get_json()
    [warning] = created.get_json()["warnings"]["configuration.url"]
    assert "non-public address (10.1.2.3)" in warning and "refused when it runs" in warning


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://[::1]/hook",
        "http://10.0.0.8/hook",
        "http://0x7f.0.0.1/hook",
        "http://2130706433/hook",
        "http://localhost/hook",
        "http://exa mple.com/hook",
    ],
)
def test_literal_private_addresses_and_bad_names_are_still_refused_on_save(api, acme, guarded, url):
    workflow = _webhook_workflow(acme)
    created = api.post(
        NODES,
        json={
            "workflow": workflow.id,
            "node_id": "bad",
            "node_type": "webhook",
            "configuration": {"url": url},
        },
    )
    assert created.status_code == 422, created.get_json()
    assert "configuration.url" in created.get_json()["error"]["fields"]


def test_a_literal_loopback_address_is_saved_when_private_targets_are_allowed(app, api, acme):
    workflow = _webhook_workflow(acme)
    with configured(app, WEBHOOK_ALLOW_PRIVATE=True):
        created = api.post(
            NODES,
            json={
                "workflow": workflow.id,
                "node_id": "local",
                "node_type": "webhook",
                "configuration": {"url": "http://127.0.0.1:9/hook"},
            },
        )
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["warnings"] == {}


def test_the_inspector_saves_a_host_that_does_not_resolve_and_shows_the_warning(
    client, auth, alice, acme, guarded
):
    workflow = _webhook_workflow(acme)
    assert auth.login(alice).status_code == 302
    token = auth.csrf_token("/automation")
    response = client.post(
        f"/automation/builder/{workflow.id}/nodes/hook",
        data={"csrf_token": token, "label": "Hook", "url": NOT_LIVE, "method": "POST"},
        headers=HX,
    )
    assert response.status_code == 200, response.text
    assert "Saved, but check" in response.text
    assert "does not resolve" in response.text
    with firm_context(acme.id):
        db.session.expire_all()
        stored = db.session.scalars(select(WorkflowNode.configuration)).one()
    assert stored["url"] == NOT_LIVE


def test_an_import_keeps_a_host_that_does_not_resolve(api, acme, guarded):
    document = {
        "format": "automation-workflow",
        "version": 1,
        "workflow": {
            "name": "Not live yet",
            "nodes": [
                {"node_id": "hook", "node_type": "webhook", "configuration": {"url": NOT_LIVE}}
            ],
        },
    }
    response = api.post("/api/v1/automation/workflows/import/", json=document)
    assert response.status_code == 201, response.get_json()


def test_the_send_still_refuses_what_the_save_only_warned_about(acme, alice, guarded, dns):
    dns.answers["intranet.test"] = ["127.0.0.1"]
    contact = make_contact(acme)
    ids = []
    for url in ("http://intranet.test/hook", NOT_LIVE):
        workflow = active_workflow(
            acme,
            alice,
            [
                {
                    "node_id": "hook",
                    "node_type": "webhook",
                    "configuration": {"url": url, "max_attempts": 1},
                }
            ],
            [],
        )
        ids += start(workflow, contact)
    drain()
    with firm_context(acme.id):
        db.session.expire_all()
        errors = [db.session.get(WorkflowExecution, i).last_error for i in ids]
        rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [row.status for row in rows] == ["failed", "failed"]
    assert "non-public address (127.0.0.1)" in errors[0]
    assert "does not resolve" in errors[1]
