"""Publishing a new version moves the contacts inside, as mapped, at once."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.automation.graph.definition import definition_of
from app.automation.graph.rows import apply_definition
from app.automation.graph.validation import WorkflowInvalid
from app.automation.lifecycle.publishing import (
    BadMapping,
    UnmappedNodes,
    list_versions,
    publish,
    rollback,
    waiting_counts,
)
from app.clock import now
from app.extensions import db
from app.models import ContactFlowState, WorkflowVersion
from app.models.workflow import ImmutableVersion
from app.tenancy import firm_context
from tests.lifecycle.helpers import executions, nurture_workflow, park


@pytest.fixture
def live(acme, alice):
    workflow = nurture_workflow(acme)
    with firm_context(acme.id):
        version, moved = publish(workflow, alice)
    assert version.number == 1 and moved == {}
    return workflow


def _edit(firm, workflow, change):
    """Apply ``change(definition)`` to the live graph (what the builder does)."""
    with firm_context(firm.id):
        definition = copy.deepcopy(definition_of(workflow))
        change(definition)
        apply_definition(workflow, definition)
        db.session.commit()


def _drop_node(definition, key, rewire_from, rewire_to):
    definition["nodes"] = [n for n in definition["nodes"] if n["node_id"] != key]
    definition["edges"] = [e for e in definition["edges"] if key not in (e["source"], e["target"])]
    definition["edges"].append(
        {"source": rewire_from, "target": rewire_to, "condition_type": None, "condition_config": {}}
    )


def test_the_first_publish_snapshots_version_one(acme, live, alice):
    with firm_context(acme.id):
        (version,) = list_versions(live)
        assert version.number == 1 and version.created_by_id == alice.id
        assert version.definition == definition_of(live)
        assert live.status == "active" and live.version == 1


def test_publishing_an_unchanged_graph_makes_no_new_version(acme, live, alice):
    with firm_context(acme.id):
        version, _ = publish(live, alice)
        assert version.number == 1
        assert len(list_versions(live)) == 1


def test_a_version_cannot_be_changed(acme, live):
    with firm_context(acme.id):
        version = db.session.scalars(select(WorkflowVersion)).one()
        version.definition = {"nodes": []}
        with pytest.raises(ImmutableVersion):
            db.session.flush()
        db.session.rollback()
        assert db.session.scalars(select(WorkflowVersion)).one().definition["nodes"]


def test_an_invalid_graph_is_not_published(acme, live, alice):
    _edit(acme, live, lambda d: d["edges"].pop())  # tag_done is now unreachable
    with firm_context(acme.id), pytest.raises(WorkflowInvalid) as info:
        publish(live, alice)
    assert any(p["node"] == "tag_done" for p in info.value.problems)
    with firm_context(acme.id):
        assert len(list_versions(live)) == 1


def test_contacts_on_a_kept_node_keep_their_wait(acme, live, alice):
    ids = park(acme, live, "wait_2_days", 3)
    wake_before = executions(acme, ids)[0].wake_at

    def shorten(d):
        d["nodes"][1]["configuration"]["wait_duration_hours"] = 24

    _edit(acme, live, shorten)
    with firm_context(acme.id):
        version, moved = publish(live, alice)
    assert version.number == 2
    assert moved == {"wait_2_days": 3}
    rows = executions(acme, ids)
    assert {(r.version, r.current_node, r.status, r.wait_reason) for r in rows} == {
        (2, "wait_2_days", "waiting", "timer")
    }
    assert rows[0].wake_at == wake_before


def test_contacts_on_a_removed_node_refuse_without_a_mapping(acme, live, alice):
    park(acme, live, "send_tips", 2)
    park(acme, live, "wait_2_days", 1)
    _edit(acme, live, lambda d: _drop_node(d, "send_tips", "wait_2_days", "wait_1_day"))
    with firm_context(acme.id), pytest.raises(UnmappedNodes) as info:
        publish(live, alice)
    assert info.value.unmapped == [{"node": "send_tips", "count": 2}]
    with firm_context(acme.id):
        db.session.rollback()
        assert [v.number for v in list_versions(live)] == [1]


def test_contacts_land_where_the_mapping_says(acme, live, alice):
    moved_ids = park(acme, live, "send_tips", 2, status="running", wait_reason=None)
    staying = park(acme, live, "wait_2_days", 1)
    _edit(acme, live, lambda d: _drop_node(d, "send_tips", "wait_2_days", "wait_1_day"))
    with firm_context(acme.id):
        version, moved = publish(live, alice, mapping={"send_tips": "wait_1_day"})
    assert version.number == 2
    assert moved == {"send_tips": 2, "wait_2_days": 1}
    for row in executions(acme, moved_ids):
        assert (row.version, row.current_node, row.status) == (2, "wait_1_day", "running")
        assert row.wait_reason is None and row.wake_at <= now()
    (kept,) = executions(acme, staying)
    assert (kept.version, kept.current_node, kept.status) == (2, "wait_2_days", "waiting")
    with firm_context(acme.id):
        visits = db.session.scalars(
            select(ContactFlowState).where(ContactFlowState.execution_id.in_(moved_ids))
        ).all()
        assert {(v.node_id, v.branch, v.next_node) for v in visits} == {
            ("send_tips", "moved", "wait_1_day")
        }
        assert all(v.exited_at is not None for v in visits)


def test_keep_on_old_version_leaves_everyone_where_they_are(acme, live, alice):
    ids = park(acme, live, "send_tips", 2)
    _edit(acme, live, lambda d: _drop_node(d, "send_tips", "wait_2_days", "wait_1_day"))
    with firm_context(acme.id):
        version, moved = publish(live, alice, keep_on_old_version=True)
    assert version.number == 2 and moved == {}
    assert {(r.version, r.current_node) for r in executions(acme, ids)} == {(1, "send_tips")}


def test_a_null_target_keeps_that_node_on_its_version(acme, live, alice):
    tips = park(acme, live, "send_tips", 1)
    wait = park(acme, live, "wait_2_days", 1)
    _edit(acme, live, lambda d: _drop_node(d, "send_tips", "wait_2_days", "wait_1_day"))
    with firm_context(acme.id):
        _, moved = publish(live, alice, mapping={"send_tips": None})
    assert moved == {"wait_2_days": 1}
    assert executions(acme, tips)[0].version == 1
    assert executions(acme, wait)[0].version == 2


def test_a_mapping_to_a_missing_step_is_refused(acme, live, alice):
    park(acme, live, "send_tips", 1)
    with firm_context(acme.id), pytest.raises(BadMapping) as info:
        publish(live, alice, mapping={"send_tips": "nowhere"})
    assert info.value.problems[0]["node"] == "send_tips"


def test_a_changed_step_type_lands_contacts_fresh(acme, live, alice):
    ids = park(acme, live, "wait_1_day", 1)

    def retype(d):
        node = next(n for n in d["nodes"] if n["node_id"] == "wait_1_day")
        node["node_type"] = "add_tag"
        node["configuration"] = {"tag": "x"}

    _edit(acme, live, retype)
    with firm_context(acme.id):
        _, moved = publish(live, alice)
    assert moved == {"wait_1_day": 1}
    (row,) = executions(acme, ids)
    assert (row.current_node, row.status, row.wait_reason) == ("wait_1_day", "running", None)


def test_finished_test_and_leased_executions_are_not_moved(acme, live, alice):
    finished = park(acme, live, "send_tips", 1, status="completed")
    test_run = park(acme, live, "send_tips", 1, test_mode=True)
    leased = park(
        acme, live, "send_tips", 1, status="running", lease_until=now() + timedelta(minutes=5)
    )
    with firm_context(acme.id):
        assert waiting_counts(live) == {"send_tips": 1}
    _edit(acme, live, lambda d: d["nodes"][2]["configuration"].update(subject="New tips"))
    with firm_context(acme.id):
        _, moved = publish(live, alice)
    assert moved == {}
    for ids in (finished, test_run, leased):
        assert executions(acme, ids)[0].version == 1


def test_waiting_counts_add_up_every_version(acme, live, alice):
    park(acme, live, "wait_2_days", 2)
    park(acme, live, "wait_1_day", 1, version=1)
    with firm_context(acme.id):
        assert waiting_counts(live) == {"wait_2_days": 2, "wait_1_day": 1}


def test_rollback_publishes_the_old_graph_as_a_new_version(acme, live, alice):
    _edit(acme, live, lambda d: _drop_node(d, "send_tips", "wait_2_days", "wait_1_day"))
    with firm_context(acme.id):
        publish(live, alice)
    ids = park(acme, live, "wait_1_day", 2)
    with firm_context(acme.id):
        version, moved = rollback(live, 1, alice)
        assert version.number == 3
        assert moved == {"wait_1_day": 2}
        v1 = db.session.scalars(select(WorkflowVersion).where(WorkflowVersion.number == 1)).one()
        restored = definition_of(live)
        # Same steps (a re-created step comes last in row order).
        assert sorted(restored["nodes"], key=lambda n: n["node_id"]) == sorted(
            v1.definition["nodes"], key=lambda n: n["node_id"]
        )
        assert len(restored["edges"]) == len(v1.definition["edges"])
        assert live.node_by_key("send_tips") is not None
    assert {(r.version, r.current_node) for r in executions(acme, ids)} == {(3, "wait_1_day")}


def test_rollback_with_unmapped_contacts_changes_nothing(acme, live, alice):
    def add_step(d):
        d["nodes"].append(
            {"node_id": "extra", "node_type": "add_tag", "configuration": {"tag": "x"}}
        )
        d["edges"].append({"source": "tag_done", "target": "extra", "condition_type": None})

    _edit(acme, live, add_step)
    with firm_context(acme.id):
        publish(live, alice)
    park(acme, live, "extra", 1)
    with firm_context(acme.id), pytest.raises(UnmappedNodes):
        rollback(live, 1, alice)
    with firm_context(acme.id):
        db.session.expire_all()
        assert live.node_by_key("extra") is not None
        assert [v.number for v in list_versions(live)] == [2, 1]


def test_rollback_to_an_unknown_version_is_a_lookup_error(acme, live, alice):
    with firm_context(acme.id), pytest.raises(LookupError):
        rollback(live, 9, alice)


def test_a_bulk_update_of_versions_is_refused(acme, live):
    from sqlalchemy import update

    with firm_context(acme.id), pytest.raises(ImmutableVersion):
        db.session.execute(update(WorkflowVersion).values(definition={}))


@pytest.mark.postgres
def test_concurrent_publishes_take_one_version_number_each(app, acme, live, alice):
    """Two publishers at once: the row lock orders them; no duplicate number."""
    import threading

    _edit(acme, live, lambda d: d["nodes"][2]["configuration"].update(subject="Concurrent"))
    barrier = threading.Barrier(2)
    results, errors = [], []
    # Plain values: the fixtures' objects belong to this thread's session.
    workflow_id, user_id, firm_id = live.id, alice.id, acme.id
    Workflow, User = type(live), type(alice)

    def run():
        with app.app_context(), firm_context(firm_id):
            try:
                workflow = db.session.get(Workflow, workflow_id)
                user = db.session.get(User, user_id)
                barrier.wait(timeout=10)
                version, _ = publish(workflow, user)
                results.append(version.number)
            except Exception as exc:  # the failure this test guards against
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(results) == [2, 2]
    with firm_context(acme.id):
        assert [v.number for v in list_versions(live)] == [2, 1]
