"""The audiences API (docs/CONTRACT.md "JSON API", "Audiences")."""

from __future__ import annotations

import time

import pytest

from app.automation.audiences.enroll import run_enrollment
from app.extensions import db
from app.models import Contact, Tag, WorkflowExecution
from app.tenancy import firm_context
from tests.api.conftest import ApiClient
from tests.factories import make_contact, make_workflow


@pytest.fixture
def api(client, token_for, alice):
    return ApiClient(client, token_for(alice))


@pytest.fixture
def charlie_api(client, token_for, charlie):
    return ApiClient(client, token_for(charlie))


def _vips(acme, n: int) -> list[int]:
    ids = []
    with firm_context(acme.id):
        tag = Tag(name="vip")
        db.session.add(tag)
        db.session.commit()
    for i in range(n):
        contact = make_contact(acme, score=i)
        with firm_context(acme.id):
            db.session.get(Contact, contact.id).tags.append(db.session.get(Tag, tag.id))
            db.session.commit()
        ids.append(contact.id)
    return ids


def test_create_count_page_and_change(api, acme):
    vips = _vips(acme, 5)
    make_contact(acme)
    created = api.post(
        "/api/v1/audiences/",
        {"name": "VIPs", "rules": [{"tag": "vip", "op": "has"}]},
    )
    assert created.status_code == 201, created.get_json()
    audience = created.get_json()
    assert audience["match"] == "all" and audience["timed"] is False
    base = f"/api/v1/audiences/{audience['id']}/"
    assert api.get(base + "count/").get_json() == {"count": 5}
    first = api.get(base + "contacts/?limit=3").get_json()
    assert [c["id"] for c in first["results"]] == vips[:3]
    second = api.get(base + f"contacts/?limit=3&cursor={first['next']}").get_json()
    assert [c["id"] for c in second["results"]] == vips[3:] and second["next"] is None
    changed = api.client.patch(
        base,
        json={"rules": [{"tag": "vip"}, {"field": "contact.score", "op": "gte", "value": 3}]},
        headers=api.headers,
    )
    assert changed.status_code == 200, changed.get_json()
    assert api.get(base + "count/").get_json() == {"count": 2}
    assert api.get("/api/v1/audiences/").get_json()["results"][0]["name"] == "VIPs"
    assert api.client.delete(base, headers=api.headers).status_code == 204
    assert api.get(base).status_code == 404


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ([{"tag": "vip", "op": "maybe"}], "rules[0].op"),
        ([{"field": "contact.score", "op": "around", "value": 1}], "rules[0].op"),
        ([{"tag": "vip"}, {"field": "nowhere", "op": "eq"}], "rules[1].field"),
        ([{"rules": [{"list": "x"}]}], "rules[0].rules[0].list"),
        ([{"event": "email_opened", "within_days": 0}], "rules[0].within_days"),
        ([{"audience": 999999}], "rules[0].audience"),
        ("nope", "rules"),
    ],
)
def test_a_bad_rule_is_a_422_naming_it(api, rules, field):
    answer = api.post("/api/v1/audiences/", {"name": "Bad", "rules": rules})
    assert answer.status_code == 422, answer.get_json()
    assert field in answer.get_json()["error"]["fields"], answer.get_json()


def test_names_are_unique_and_other_firms_see_nothing(api, charlie_api):
    created = api.post("/api/v1/audiences/", {"name": "All", "rules": []}).get_json()
    assert api.post("/api/v1/audiences/", {"name": "All", "rules": []}).status_code == 409
    assert api.post("/api/v1/audiences/", {"name": "", "rules": []}).status_code == 400
    base = f"/api/v1/audiences/{created['id']}/"
    for path in (base, base + "count/", base + "contacts/"):
        assert charlie_api.get(path).status_code == 404
    assert charlie_api.post(base + "enroll/", {"workflow": 1}).status_code == 404


def _finished(api, base: str, job_id: int) -> dict:
    run_enrollment(job_id)  # here, unless the in-process runner has it already
    deadline = time.monotonic() + 30
    while True:
        db.session.rollback()  # a fresh snapshot for each poll
        answer = api.get(base + f"enroll/{job_id}/")
        assert answer.status_code == 200
        if answer.get_json()["status"] in ("done", "failed") or time.monotonic() > deadline:
            return answer.get_json()
        time.sleep(0.05)


def test_enroll_now_starts_every_member_once_and_reports_progress(api, acme, charlie):
    vips = _vips(acme, 7)
    workflow = make_workflow(
        acme,
        name="Nurture",
        status="active",
        nodes=[
            {"node_id": "w", "node_type": "wait_time", "configuration": {"wait_duration_hours": 1}}
        ],
        triggers=[{"trigger_type": "manual"}],
    )
    audience = api.post("/api/v1/audiences/", {"name": "VIPs", "rules": [{"tag": "vip"}]})
    base = f"/api/v1/audiences/{audience.get_json()['id']}/"
    assert api.post(base + "enroll/", {}).status_code == 400
    bad = api.post(base + "enroll/", {"workflow": 999999})
    assert bad.status_code == 422 and "workflow" in bad.get_json()["error"]["fields"]
    started = api.post(base + "enroll/", {"workflow": workflow.id})
    assert started.status_code == 202, started.get_json()
    assert started.get_json()["status"] in ("queued", "running", "done")
    job = _finished(api, base, started.get_json()["id"])
    assert job["status"] == "done" and job["percent"] == 100
    assert job["total"] == 7 and job["processed"] == 7 and job["enrolled"] == 7
    again = api.post(base + "enroll/", {"workflow": workflow.id}).get_json()
    assert _finished(api, base, again["id"])["enrolled"] == 0
    with firm_context(acme.id):
        rows = db.session.query(WorkflowExecution.contact_id).all()
        assert sorted(r[0] for r in rows) == vips


def test_an_enrollment_whose_worker_died_resumes_without_repeats(api, acme, time_machine):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from app.automation.audiences import enroll as enroll_module
    from app.models import AudienceEnrollment

    time_machine.move_to(datetime(2026, 12, 1, 9, tzinfo=UTC), tick=False)
    vips = _vips(acme, 5)
    workflow = make_workflow(
        acme,
        name="Nurture",
        status="active",
        nodes=[
            {"node_id": "w", "node_type": "wait_time", "configuration": {"wait_duration_hours": 1}}
        ],
        triggers=[{"trigger_type": "manual"}],
    )
    audience = api.post("/api/v1/audiences/", {"name": "VIPs", "rules": [{"tag": "vip"}]})
    base = f"/api/v1/audiences/{audience.get_json()['id']}/"
    job_id = api.post(base + "enroll/", {"workflow": workflow.id}).get_json()["id"]
    _finished(api, base, job_id)
    # As if the worker had died after the first batch of two.
    with firm_context(acme.id):
        db.session.execute(
            update(AudienceEnrollment)
            .where(AudienceEnrollment.id == job_id)
            .values(status="running", processed=2, enrolled=2, last_contact_id=vips[1])
        )
        db.session.commit()
    assert enroll_module.recover_enrollments() == {"requeued": 0, "failed": 0}  # not stale yet
    time_machine.move_to(datetime(2026, 12, 1, 9, tzinfo=UTC) + timedelta(minutes=6), tick=False)
    assert enroll_module.recover_enrollments() == {"requeued": 1, "failed": 0}
    job = _finished(api, base, job_id)
    assert job["status"] == "done" and job["processed"] == 5
    assert job["enrolled"] == 2  # the other three were started before: nobody twice
    with firm_context(acme.id):
        assert db.session.query(WorkflowExecution).count() == 5


def test_an_enrollment_that_keeps_killing_its_worker_is_failed_not_retried(
    api, acme, time_machine, monkeypatch
):
    """Each recovery finds the job running and stalled at the same batch:
    after STALL_LIMIT in a row it is failed with a reason, and a batch done
    in between starts the count again."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from app.automation.audiences import enroll as enroll_module
    from app.models import AudienceEnrollment

    moment = datetime(2026, 12, 1, 9, tzinfo=UTC)
    time_machine.move_to(moment, tick=False)
    _vips(acme, 2)
    workflow = make_workflow(
        acme,
        name="Nurture",
        status="active",
        nodes=[{"node_id": "t", "node_type": "add_tag", "configuration": {"tag": "seen"}}],
        triggers=[{"trigger_type": "manual"}],
    )
    audience = api.post("/api/v1/audiences/", {"name": "VIPs", "rules": [{"tag": "vip"}]})
    base = f"/api/v1/audiences/{audience.get_json()['id']}/"
    job_id = api.post(base + "enroll/", {"workflow": workflow.id}).get_json()["id"]
    _finished(api, base, job_id)

    # The re-queued job is noted, not run: here every copy of it dies
    # (a runner thread finishing it would race the deaths below).
    requeued: list[int] = []
    monkeypatch.setattr(enroll_module, "enqueue", lambda func, job: requeued.append(job))

    def worker_dies(**values):
        # The job was picked up and its worker died before finishing a batch.
        with firm_context(acme.id):
            db.session.execute(
                update(AudienceEnrollment)
                .where(AudienceEnrollment.id == job_id)
                .values(status="running", updated_at=moment, finished_at=None, **values)
            )
            db.session.commit()

    def recover(minutes):
        time_machine.move_to(moment + timedelta(minutes=minutes), tick=False)
        return enroll_module.recover_enrollments()

    for n in range(enroll_module.STALL_LIMIT - 1):
        worker_dies()
        assert recover(6 * (n + 1)) == {"requeued": 1, "failed": 0}
    worker_dies(stalls=0)  # a batch finished in between: the count starts again
    assert recover(20) == {"requeued": 1, "failed": 0}
    for n in range(enroll_module.STALL_LIMIT - 2):
        worker_dies()
        assert recover(30 + 6 * n) == {"requeued": 1, "failed": 0}
    worker_dies()
    assert recover(60) == {"requeued": 0, "failed": 1}
    job = api.get(base + f"enroll/{job_id}/").get_json()
    assert job["status"] == "failed" and "died 3 times in a row" in job["error"]
    assert recover(70) == {"requeued": 0, "failed": 0}  # and left alone after
    assert requeued == [job_id] * (2 * enroll_module.STALL_LIMIT - 2)
