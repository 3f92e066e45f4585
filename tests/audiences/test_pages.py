"""The audience pages: list, editor with live count and sample, delete,
enroll with a progress bar."""

from __future__ import annotations

import time

from app.automation.audiences.enroll import run_enrollment
from app.extensions import db
from app.models import Audience, AudienceEnrollment, WorkflowExecution
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow


def _post(client, path, data, csrf, **headers):
    return client.post(path, data={"csrf_token": csrf, **data}, headers=headers)


def test_create_preview_edit_and_delete(client, signed_in, alice, acme):
    csrf = signed_in(alice)
    for score in (10, 60, 90):
        make_contact(acme, score=score)
    assert b"Audiences" in client.get("/audiences/").data
    assert client.get("/audiences/new").status_code == 200
    rule = {
        "rules-0-kind": "field",
        "rules-0-field": "contact.score",
        "rules-0-op": "gte",
        "rules-0-value": "50",
    }
    preview = _post(
        client, "/audiences/preview", {"match": "all", **rule}, csrf, **{"HX-Request": "true"}
    )
    assert preview.status_code == 200 and b'id="audience-count">2<' in preview.data
    added = _post(client, "/audiences/new", {"name": "Hot", "_action": "add_rule:audience"}, csrf)
    assert added.status_code == 200 and b"Rule 1: audience" in added.data
    bad = _post(client, "/audiences/new", {"name": "Hot", **rule, "rules-0-op": "around"}, csrf)
    assert bad.status_code == 400
    created = _post(client, "/audiences/new", {"name": "Hot", "match": "all", **rule}, csrf)
    assert created.status_code == 302
    with firm_context(acme.id):
        audience = db.session.query(Audience).one()
    page = client.get(f"/audiences/{audience.id}")
    assert page.status_code == 200 and b'id="audience-count">2<' in page.data
    listing = client.get("/audiences/")
    assert b"Hot" in listing.data
    changed = _post(
        client, f"/audiences/{audience.id}", {"name": "Hotter", **rule, "rules-0-value": "80"}, csrf
    )
    assert changed.status_code == 302
    assert b'id="audience-count">1<' in client.get(f"/audiences/{audience.id}").data
    assert _post(client, f"/audiences/{audience.id}/delete", {}, csrf).status_code == 302
    assert client.get(f"/audiences/{audience.id}").status_code == 404


def test_enroll_shows_a_progress_bar(client, signed_in, alice, acme):
    csrf = signed_in(alice)
    for _ in range(3):
        make_contact(acme, score=70)
    workflow = make_workflow(
        acme,
        name="Nurture",
        status="active",
        nodes=[
            {"node_id": "w", "node_type": "wait_time", "configuration": {"wait_duration_hours": 1}}
        ],
        triggers=[{"trigger_type": "manual"}],
    )
    with firm_context(acme.id):
        from app.automation.audiences.saving import create_audience

        audience = create_audience("All", "all", [])
        audience_id = audience.id
    refused = _post(client, f"/audiences/{audience_id}/enroll", {"workflow": ""}, csrf)
    assert refused.status_code == 400 and b"enroll-workflow-error" in refused.data
    started = _post(
        client, f"/audiences/{audience_id}/enroll", {"workflow": str(workflow.id)}, csrf
    )
    assert started.status_code == 302
    with firm_context(acme.id):
        job_id = db.session.query(AudienceEnrollment.id).scalar()
    page = client.get(started.headers["Location"])
    assert page.status_code == 200 and b'role="progressbar"' in page.data
    run_enrollment(job_id)  # here, unless the in-process runner has it already
    deadline = time.monotonic() + 30
    while True:
        db.session.rollback()  # a fresh snapshot for each poll
        fragment = client.get(started.headers["Location"], headers={"HX-Request": "true"})
        if b'data-status="done"' in fragment.data or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert b'data-status="done"' in fragment.data and b"3 started" in fragment.data
    with firm_context(acme.id):
        assert db.session.query(WorkflowExecution).count() == 3
