"""SSRF: webhook URLs that reach our own machine or networks are refused
when saved (API create and update, builder inspector, import) and again
when sent -- with a real listener on 127.0.0.1 (and ::1) proving that no
connection was ever made. Redirects are never followed."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from sqlalchemy import func, select

from app.automation.delivery.dispatcher import deliver_due
from app.automation.delivery.outbox import build_outbox_row
from app.automation.engine.jobs import drain
from app.extensions import db
from app.models import OutboxMessage, WorkflowExecution, WorkflowNode
from app.tenancy import firm_context
from tests.api.conftest import ApiClient
from tests.delivery.conftest import Receiver, configured, make_execution
from tests.engine.helpers import active_workflow, start
from tests.factories import make_contact, make_workflow
from tests.security.payloads import loopback_name, ssrf_urls
from tests.web.conftest import HX

NODES = "/api/v1/automation/nodes/"
PUBLIC = "http://93.184.216.34/hook"


class Listener:
    """Raw TCP listeners on 127.0.0.1 and ::1 (same port) that count every
    connection accepted: the proof that a refused URL was never called."""

    def __init__(self):
        self.connections = 0
        self.lock = threading.Lock()
        self.sockets = []
        v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        v4.bind(("127.0.0.1", 0))
        self.port = v4.getsockname()[1]
        self.sockets.append(v4)
        try:
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            v6.bind(("::1", self.port))
            self.sockets.append(v6)
        except OSError:
            pass  # no IPv6 loopback here: the v4 listener still counts
        for sock in self.sockets:
            sock.listen(16)
            sock.settimeout(0.2)
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()
        self.running = True

    def _accept(self, sock):
        while self.sockets:
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            conn.close()

    def close(self):
        sockets, self.sockets = self.sockets, []
        for sock in sockets:
            sock.close()


@pytest.fixture
def api(client, token_for, alice) -> ApiClient:
    return ApiClient(client, token_for(alice))


@pytest.fixture
def signed_in(client, auth):
    def login(user) -> str:
        assert auth.login(user).status_code == 302
        return auth.csrf_token("/automation")

    return login


@pytest.fixture
def listener(app):
    server = Listener()
    with configured(app, WEBHOOK_ALLOW_PRIVATE=False):
        yield server
    server.close()


def _node_count(firm) -> int:
    with firm_context(firm.id):
        return db.session.scalar(select(func.count()).select_from(WorkflowNode))


def _saved_with_a_warning(port: int) -> list[str]:
    """The corpus URLs a save keeps (with a warning): a host given by a name
    other than ``localhost`` is not resolved at save (docs/SENDING.md,
    "Webhooks"); send time resolves and refuses it."""
    name = loopback_name()
    return [] if name == "localhost" else [f"http://{name}:{port}/"]


def test_every_ssrf_url_is_refused_when_a_node_is_created_or_changed_by_the_api(
    api, acme, listener
):
    workflow = make_workflow(
        acme, nodes=[{"node_id": "hook", "node_type": "webhook", "configuration": {"url": PUBLIC}}]
    )
    with firm_context(acme.id):
        hook_pk = workflow.node_by_key("hook").id
    corpus = ssrf_urls(listener.port)
    named = _saved_with_a_warning(listener.port)
    for i, url in enumerate(corpus):
        created = api.post(
            NODES,
            json={
                "workflow": workflow.id,
                "node_id": f"bad_{i}",
                "node_type": "webhook",
                "configuration": {"url": url},
            },
        )
        changed = api.patch(f"{NODES}{hook_pk}/", json={"configuration": {"url": url}})
        if url in named:
            for answer in (created, changed):
                assert answer.status_code in (200, 201), (url, answer.get_json())
                [warning] = answer.get_json()["warnings"]["configuration.url"]
                assert "non-public address" in warning, warning
            api.patch(f"{NODES}{hook_pk}/", json={"configuration": {"url": PUBLIC}})
            continue
        assert created.status_code == 422, (url, created.get_json())
        assert "configuration.url" in created.get_json()["error"]["fields"], url
        assert changed.status_code == 422, (url, changed.get_json())
        assert "configuration.url" in changed.get_json()["error"]["fields"], url
    assert _node_count(acme) == 1 + len(named)
    with firm_context(acme.id):
        db.session.expire_all()
        assert db.session.get(WorkflowNode, hook_pk).configuration["url"] == PUBLIC
    assert listener.connections == 0
    print(
        f"\nssrf api save: {len(corpus) - len(named)} urls x create+update refused, "
        f"{len(named)} saved with a warning, connections 0"
    )


def test_every_ssrf_url_is_refused_by_the_builder_inspector(
    client, signed_in, alice, acme, listener
):
    workflow = make_workflow(
        acme, nodes=[{"node_id": "hook", "node_type": "webhook", "configuration": {"url": PUBLIC}}]
    )
    token = signed_in(alice)
    corpus = ssrf_urls(listener.port)
    named = _saved_with_a_warning(listener.port)
    for url in corpus:
        response = client.post(
            f"/automation/builder/{workflow.id}/nodes/hook",
            data={"csrf_token": token, "label": "Hook", "url": url, "method": "POST"},
            headers=HX,
        )
        if url in named:
            assert response.status_code == 200, url
            assert "Saved, but check" in response.text and "non-public address" in response.text
            continue
        assert response.status_code == 422, url
    with firm_context(acme.id):
        db.session.expire_all()
        stored = db.session.scalars(select(WorkflowNode.configuration)).one()
    assert stored["url"] == (named[-1] if named else PUBLIC)
    assert listener.connections == 0


def test_every_ssrf_url_is_refused_in_an_imported_workflow(api, acme, listener):
    # An import checks like the editors: no DNS, so a name (here one that
    # /etc/hosts maps to loopback) is imported; the send-time check refuses it.
    corpus = ssrf_urls(listener.port)
    named = _saved_with_a_warning(listener.port)
    for url in corpus:
        document = {
            "format": "automation-workflow",
            "version": 1,
            "workflow": {
                "name": f"Imported hook {url}"[:200],
                "nodes": [
                    {"node_id": "hook", "node_type": "webhook", "configuration": {"url": url}}
                ],
            },
        }
        response = api.post("/api/v1/automation/workflows/import/", json=document)
        if url in named:
            assert response.status_code == 201, (url, response.get_json())
            continue
        assert response.status_code == 422, (url, response.get_json())
        fields = [p["field"] for p in response.get_json()["error"]["problems"]]
        assert "workflow.nodes.0.configuration.url" in fields, (url, fields)
    assert _node_count(acme) == len(named)
    assert listener.connections == 0


def test_a_stored_ssrf_url_is_refused_at_send_without_any_connection(acme, listener):
    # Rows written straight to the database (as an old version or a direct
    # edit would leave them) bypass the save checks: the send check holds.
    corpus = ssrf_urls(listener.port)
    contact = make_contact(acme)
    execution = make_execution(acme, make_workflow(acme, name="Hooks"), contact)
    rows, refused_by_schema = [], 0
    with firm_context(acme.id):
        for i, url in enumerate(corpus):
            node = {"node_id": f"h{i}", "node_type": "webhook", "configuration": {"url": url}}
            try:
                row = build_outbox_row(
                    firm_id=acme.id,
                    execution=execution,
                    node=node,
                    visit=1,
                    context=None,
                    contact=contact,
                )
            except ValueError:
                # Not an http(s) URL: the node's own schema refuses it.
                assert not url.startswith(("http://", "https://")), url
                refused_by_schema += 1
                continue
            rows.append(OutboxMessage(**row))
        db.session.add_all(rows)
        db.session.commit()
    began = time.monotonic()
    while deliver_due():
        pass
    elapsed = time.monotonic() - began
    with firm_context(acme.id):
        db.session.expire_all()
        outbox = db.session.scalars(select(OutboxMessage)).all()
    assert len(outbox) == len(corpus) - refused_by_schema
    for row in outbox:
        assert row.status == "failed" and row.attempts == 1, (row.to_address, row.status)
        assert not row.response or row.response.get("status_code") is None
    assert listener.connections == 0
    print(
        f"\nssrf send: {len(corpus)} urls ({refused_by_schema} refused by the node schema, "
        f"{len(outbox)} refused by the send check), connections 0, {elapsed:.2f}s"
    )


def test_a_webhook_step_to_loopback_fails_its_execution_cleanly(acme, alice, listener):
    urls = [
        f"http://2130706433:{listener.port}/",
        f"http://{loopback_name()}:{listener.port}/",
        "http://169.254.169.254/latest/meta-data/",
    ]
    contact = make_contact(acme)
    ids = []
    for url in urls:
        workflow = active_workflow(
            acme,
            alice,
            [{"node_id": "hook", "node_type": "webhook", "configuration": {"url": url}}],
            [],
        )
        ids += start(workflow, contact)
    drain()
    with firm_context(acme.id):
        db.session.expire_all()
        executions = [db.session.get(WorkflowExecution, i) for i in ids]
    for execution in executions:
        assert execution.status == "failed", (execution.status, execution.last_error)
        assert "non-public address" in execution.last_error
    assert listener.connections == 0


def test_a_redirect_to_loopback_is_never_followed(app, acme, alice, listener):
    # The first hop must be allowed to be local (our test receiver), so the
    # address check is lifted; the redirect target is the listener.
    first_hop = Receiver()
    first_hop.redirect_to = f"http://127.0.0.1:{listener.port}/internal"
    try:
        with configured(app, WEBHOOK_ALLOW_PRIVATE=True):
            workflow = active_workflow(
                acme,
                alice,
                [
                    {
                        "node_id": "hook",
                        "node_type": "webhook",
                        "configuration": {"url": first_hop.url + "/in", "max_attempts": 1},
                    }
                ],
                [],
            )
            [execution_id] = start(workflow, make_contact(acme))
            drain()
    finally:
        first_hop.close()
    with firm_context(acme.id):
        db.session.expire_all()
        execution = db.session.get(WorkflowExecution, execution_id)
        row = db.session.scalars(select(OutboxMessage)).one()
    assert execution.status == "failed"
    assert row.status == "failed" and row.last_error == "receiver answered HTTP 302"
    assert len(first_hop.requests) == 1
    assert listener.connections == 0
