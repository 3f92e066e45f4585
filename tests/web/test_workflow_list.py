"""The workflow list page: find, create, rename, duplicate, delete,
activate, pause; access control and tenancy."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Workflow, WorkflowExecution, WorkflowNode, WorkflowTrigger
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow
from tests.web.conftest import HX


def _workflows(firm):
    with firm_context(firm.id):
        return db.session.scalars(select(Workflow).order_by(Workflow.id)).all()


def _welcome(firm, **fields):
    return make_workflow(
        firm,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "manual"}],
        **fields,
    )


def test_anonymous_is_sent_to_login(client):
    response = client.get("/automation")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_portal_users_are_forbidden(client, paula, token_for):
    # Portal users cannot sign in to the app; with a token the pages are 403.
    assert client.get("/automation", headers=token_for(paula)).status_code == 403


def test_it_lists_only_the_firms_workflows(client, signed_in, alice, acme, globex):
    make_workflow(acme, name="Acme welcome")
    make_workflow(globex, name="Globex secret")
    signed_in(alice)
    page = client.get("/automation").get_data(as_text=True)
    assert "Acme welcome" in page
    assert "Globex secret" not in page


def test_the_empty_list_explains_what_to_do(client, signed_in, alice):
    signed_in(alice)
    page = client.get("/automation").get_data(as_text=True)
    assert "No workflows yet" in page
    assert 'href="/automation/templates"' in page


def test_it_searches_and_filters_as_a_fragment_or_a_page(client, signed_in, alice, acme):
    make_workflow(acme, name="Welcome series")
    make_workflow(acme, name="Renewal reminder", status="paused")
    signed_in(alice)
    fragment = client.get("/automation?q=welc", headers=HX).get_data(as_text=True)
    assert "Welcome series" in fragment and "Renewal reminder" not in fragment
    assert "<html" not in fragment
    page = client.get("/automation?status=paused").get_data(as_text=True)
    assert "<html" in page
    assert "Renewal reminder" in page and "Welcome series" not in page
    # A history restore asks for the whole page.
    restore = client.get(
        "/automation?q=welc", headers={**HX, "HX-History-Restore-Request": "true"}
    ).get_data(as_text=True)
    assert "<html" in restore


def test_search_treats_wildcards_as_text(client, signed_in, alice, acme):
    make_workflow(acme, name="100% match")
    make_workflow(acme, name="Other")
    signed_in(alice)
    page = client.get("/automation?q=%25", headers=HX).get_data(as_text=True)
    assert "100% match" in page and "Other" not in page


def test_it_paginates(client, signed_in, alice, acme):
    for i in range(23):
        make_workflow(acme, name=f"Flow {i:02d}")
    signed_in(alice)
    first = client.get("/automation").get_data(as_text=True)
    second = client.get("/automation?page=2").get_data(as_text=True)
    assert "1–20 of 23 workflows" in first
    assert "21–23 of 23 workflows" in second
    assert client.get("/automation?page=junk").status_code == 200


def test_row_figures_come_from_grouped_queries(client, signed_in, alice, acme, count_queries):
    signed_in(alice)
    workflow = _welcome(acme, status="active")
    contacts = [make_contact(acme) for _ in range(3)]
    with firm_context(acme.id):
        for contact, status in zip(contacts, ["waiting", "goal_reached", "completed"], strict=True):
            db.session.add(
                WorkflowExecution(
                    workflow_id=workflow.id,
                    contact_id=contact.id,
                    status=status,
                    idempotency_key=f"k{contact.id}",
                )
            )
        db.session.commit()
    with count_queries() as few:
        page = client.get("/automation", headers=HX).get_data(as_text=True)
    assert ">Manual<" in page
    row = page.split(f'id="workflow-{workflow.id}"')[1]
    # Active now 1, completed 2 (completed + goal reached), conversion 1/3.
    assert '<td class="num">1</td>' in row
    assert '<td class="num">2</td>' in row
    assert "33.3%" in row
    for i in range(12):
        _welcome(acme, name=f"More {i}")
    with count_queries() as many:
        client.get("/automation", headers=HX)
    assert many["n"] == few["n"], many["sql"]


def test_it_creates_a_workflow_and_opens_the_builder(client, signed_in, alice, acme):
    token = signed_in(alice)
    response = client.post(
        "/automation", data={"name": "  Spring  sale ", "description": "Promo", "csrf_token": token}
    )
    assert response.status_code == 302
    (workflow,) = _workflows(acme)
    assert workflow.name == "Spring sale"
    assert workflow.status == "draft"
    assert workflow.created_by_id == alice.id
    assert response.headers["Location"].endswith(f"/automation/builder/{workflow.id}")


def test_create_without_a_name_shows_the_error_and_saves_nothing(client, signed_in, alice, acme):
    token = signed_in(alice)
    response = client.post("/automation", data={"name": "  ", "csrf_token": token})
    assert response.status_code == 400
    assert "Give the workflow a name." in response.get_data(as_text=True)
    assert _workflows(acme) == []


def test_writes_require_the_csrf_token(client, signed_in, alice, acme):
    signed_in(alice)
    assert client.post("/automation", data={"name": "No token"}).status_code == 400
    assert _workflows(acme) == []


def test_it_renames_inline(client, signed_in, alice, acme):
    workflow = make_workflow(acme, name="Old")
    token = signed_in(alice)
    form = client.get(f"/automation/{workflow.id}/rename", headers=HX).get_data(as_text=True)
    assert 'name="name"' in form and "<html" not in form
    full = client.get(f"/automation/{workflow.id}/rename").get_data(as_text=True)
    assert "<html" in full
    response = client.post(
        f"/automation/{workflow.id}/rename", data={"name": "New", "csrf_token": token}, headers=HX
    )
    assert response.status_code == 200
    assert "New" in response.get_data(as_text=True)
    db.session.expire_all()
    assert _workflows(acme)[0].name == "New"
    bad = client.post(
        f"/automation/{workflow.id}/rename", data={"name": "", "csrf_token": token}, headers=HX
    )
    assert bad.status_code == 400
    db.session.expire_all()
    assert _workflows(acme)[0].name == "New"


def test_cancel_rename_returns_the_row(client, signed_in, alice, acme):
    workflow = make_workflow(acme, name="Keep")
    signed_in(alice)
    row = client.get(f"/automation/{workflow.id}/row", headers=HX).get_data(as_text=True)
    assert row.lstrip().startswith("<tr")
    assert client.get(f"/automation/{workflow.id}/row").status_code == 302


def test_it_duplicates_graph_triggers_and_settings(client, signed_in, alice, acme):
    workflow = _welcome(acme, allow_reentry=True)
    token = signed_in(alice)
    response = client.post(f"/automation/{workflow.id}/duplicate", data={"csrf_token": token})
    assert response.status_code == 302
    original, copy = _workflows(acme)
    assert copy.name == "Copy of Welcome Campaign"
    assert copy.status == "draft" and copy.version == 0 and copy.allow_reentry
    with firm_context(acme.id):
        nodes = db.session.scalars(
            select(WorkflowNode.node_id).where(WorkflowNode.workflow_id == copy.id)
        ).all()
        triggers = db.session.scalars(
            select(WorkflowTrigger).where(WorkflowTrigger.workflow_id == copy.id)
        ).all()
        db.session.refresh(copy)
        edges = [(e.source_node.node_id, e.target_node.node_id) for e in copy.edges]
    assert sorted(nodes) == sorted(n["node_id"] for n in WELCOME_NODES)
    assert sorted(edges) == sorted(WELCOME_EDGES)
    assert [t.trigger_type for t in triggers] == ["manual"]


def test_it_deletes_a_draft_but_not_an_active_workflow(client, signed_in, alice, acme):
    draft = make_workflow(acme, name="Draft")
    live = make_workflow(acme, name="Live", status="active")
    token = signed_in(alice)
    confirm = client.get(f"/automation/{draft.id}/delete").get_data(as_text=True)
    assert "cannot be undone" in confirm
    response = client.post(f"/automation/{draft.id}/delete", data={"csrf_token": token}, headers=HX)
    assert response.status_code == 200 and response.get_data(as_text=True) == ""
    refused = client.post(f"/automation/{live.id}/delete", data={"csrf_token": token}, headers=HX)
    assert refused.status_code == 409
    assert refused.headers["HX-Retarget"] == "#list-messages"
    assert "Pause the workflow" in refused.get_data(as_text=True)
    assert [w.name for w in _workflows(acme)] == ["Live"]
    with firm_context(acme.id):
        actions = db.session.scalars(select(AuditLog.action)).all()
    assert "workflow.deleted" in actions


def test_activation_problems_link_to_their_nodes(client, signed_in, alice, acme):
    broken = make_workflow(
        acme,
        nodes=[{"node_id": "send", "node_type": "send_email", "configuration": {}}],
    )
    token = signed_in(alice)
    response = client.post(
        f"/automation/{broken.id}/activate", data={"csrf_token": token}, headers=HX
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert f"/automation/builder/{broken.id}?node=send" in body
    assert "add an active trigger" in body
    assert _workflows(acme)[0].status == "draft"
    full = client.post(f"/automation/{broken.id}/activate", data={"csrf_token": token})
    assert full.status_code == 422
    assert "<html" in full.get_data(as_text=True)


def test_it_activates_and_pauses(client, signed_in, alice, acme):
    workflow = _welcome(acme)
    token = signed_in(alice)
    response = client.post(
        f"/automation/{workflow.id}/activate", data={"csrf_token": token}, headers=HX
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "badge-active" in response.get_data(as_text=True)
    db.session.expire_all()
    assert _workflows(acme)[0].status == "active"
    assert _workflows(acme)[0].version == 1
    paused = client.post(f"/automation/{workflow.id}/pause", data={"csrf_token": token})
    assert paused.status_code == 302
    db.session.expire_all()
    assert _workflows(acme)[0].status == "paused"
    again = client.post(f"/automation/{workflow.id}/pause", data={"csrf_token": token}, headers=HX)
    assert again.status_code == 409


def test_another_firms_workflow_is_404(client, signed_in, charlie, acme):
    workflow = make_workflow(acme, name="Acme only")
    token = signed_in(charlie)
    for path in ("rename", "delete", "row"):
        assert client.get(f"/automation/{workflow.id}/{path}", headers=HX).status_code == 404
    for path in ("rename", "delete", "duplicate", "activate", "pause"):
        response = client.post(
            f"/automation/{workflow.id}/{path}", data={"name": "x", "csrf_token": token}
        )
        assert response.status_code == 404, path
    (still,) = _workflows(acme)
    assert still.name == "Acme only"


def test_activation_enrolls_existing_contacts_when_asked(client, signed_in, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "contact_tag_added", "configuration": {"tag": "vip"}}],
        enroll_existing=True,
    )
    from app.models import Tag

    vip = make_contact(acme)
    make_contact(acme)
    with firm_context(acme.id):
        tag = Tag(name="vip")
        db.session.add(tag)
        db.session.get(type(vip), vip.id).tags.append(tag)
        db.session.commit()
    token = signed_in(alice)
    response = client.post(
        f"/automation/{workflow.id}/activate", data={"csrf_token": token}, headers=HX
    )
    assert response.status_code == 200
    assert "1 existing contact enrolled" in response.get_data(as_text=True)
    with firm_context(acme.id):
        started = db.session.scalars(select(WorkflowExecution.contact_id)).all()
    assert started == [vip.id]


def test_a_marketer_needing_approval_is_told_so(client, signed_in, bob, acme):
    acme.settings = {"require_approval": True}
    db.session.commit()
    workflow = _welcome(acme)
    token = signed_in(bob)
    response = client.post(
        f"/automation/{workflow.id}/activate", data={"csrf_token": token}, headers=HX
    )
    assert response.status_code == 202
    assert "sent to an admin for approval" in response.get_data(as_text=True)
    assert _workflows(acme)[0].status == "draft"


def test_last_change_counts_edits_of_steps(client, signed_in, alice, acme):
    import time_machine

    with time_machine.travel("2026-01-05 10:00:00Z", tick=False):
        workflow = _welcome(acme)
    with time_machine.travel("2026-03-07 12:30:00Z", tick=False), firm_context(acme.id):
        node = db.session.scalars(
            select(WorkflowNode).where(WorkflowNode.workflow_id == workflow.id)
        ).first()
        node.label = "Renamed step"
        db.session.commit()
    signed_in(alice)
    row = client.get(f"/automation/{workflow.id}/row", headers=HX).get_data(as_text=True)
    assert "2026-03-07 12:30" in row
