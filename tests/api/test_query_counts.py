"""Lists load related objects in a constant number of queries (no N+1)."""

from __future__ import annotations

import uuid
from contextlib import contextmanager

import pytest
from sqlalchemy import event, insert

from app.extensions import db
from app.models import (
    Contact,
    ContactList,
    Deal,
    Tag,
    WorkflowExecution,
    contact_tags,
    list_members,
)
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_workflow

N = 100


@contextmanager
def counting_statements():
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


@pytest.fixture
def hundred_of_everything(acme):
    workflow = make_workflow(acme, nodes=WELCOME_NODES, edges=WELCOME_EDGES, status="active")
    with firm_context(acme.id):
        tags = [Tag(name=f"t{i}") for i in range(3)]
        lists = [ContactList(name=f"l{i}") for i in range(2)]
        db.session.add_all(tags + lists)
        contacts = [Contact(email=f"c{i}@example.com") for i in range(N)]
        db.session.add_all(contacts)
        db.session.flush()
        db.session.execute(
            insert(contact_tags),
            [{"contact_id": c.id, "tag_id": t.id} for c in contacts for t in tags],
        )
        db.session.execute(
            insert(list_members),
            [{"contact_id": c.id, "list_id": cl.id} for c in contacts for cl in lists],
        )
        db.session.add_all(
            WorkflowExecution(
                workflow_id=workflow.id,
                contact_id=c.id,
                current_node="wait_2_days",
                status="waiting",
                idempotency_key=uuid.uuid4().hex,
            )
            for c in contacts
        )
        db.session.add_all(Deal(contact_id=c.id, title="d") for c in contacts)
        db.session.commit()
    workflow_id = workflow.id
    # Later lookups must hit the database, not this session's identity map.
    db.session.expunge_all()
    return workflow_id


@pytest.mark.parametrize(
    "path",
    ["/api/v1/contacts/", "/api/v1/automation/executions/", "/api/v1/deals/"],
)
def test_a_list_of_100_takes_a_constant_number_of_queries(api, hundred_of_everything, path):
    api.get(f"{path}?limit=5")  # warm up (first-use imports, compiled-statement cache)
    db.session.expunge_all()
    with counting_statements() as small:
        assert len(api.get(f"{path}?limit=10").json["results"]) == 10
    db.session.expunge_all()
    with counting_statements() as large:
        response = api.get(f"{path}?limit={N}")
    assert len(response.json["results"]) == N
    if path == "/api/v1/contacts/":
        assert all(
            len(row["tags"]) == 3 and len(row["lists"]) == 2 for row in response.json["results"]
        )
    assert len(large) == len(small), large
    assert len(large) <= 6, large


def test_a_workflow_detail_loads_its_graph_in_a_few_queries(api, acme, hundred_of_everything):
    db.session.expunge_all()
    with counting_statements() as statements:
        detail = api.get(f"/api/v1/automation/workflows/{hundred_of_everything}/").json
    assert len(detail["nodes"]) == 3
    assert len(statements) <= 6, statements


def test_creating_a_node_takes_a_few_statements_and_no_read_back(api, acme, hundred_of_everything):
    body = {
        "workflow": hundred_of_everything,
        "node_type": "send_email",
        "configuration": {"subject": "Hi", "body_text": "Hello {{ contact.first_name }}"},
    }
    api.post("/api/v1/automation/nodes/", json={**body, "node_id": "warm_up"})
    db.session.expunge_all()
    with counting_statements() as statements:
        created = api.post("/api/v1/automation/nodes/", json={**body, "node_id": "counted"})
    assert created.status_code == 201 and created.json["node_id"] == "counted"
    # Token, workflow, free key, step count, the node, the audit row, the
    # undo history's row and its one DELETE (undone and too old edits): the
    # answer is written from the new row, not read back after the commit.
    assert len(statements) <= 8, statements
