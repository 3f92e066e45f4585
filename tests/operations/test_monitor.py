"""The stuck-work monitor: each finding comes from a test that creates
its fault (a due wait no one wakes, a worker that dies holding an
execution again and again, a receiver that fails every call, a delivery
that never runs, paused sending, a frozen worker), and goes away with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from app.automation.engine.claim import claim_ready
from app.automation.engine.jobs import advance_ready_batch, drain
from app.automation.operations.monitor import check, run_monitor
from app.clock import now
from app.extensions import db
from app.models import HealthAlert, Notification
from app.tenancy import firm_context
from tests.conftest import USING_REDIS, AuthActions
from tests.delivery.conftest import configured
from tests.engine.helpers import active_workflow, chain, execution, start
from tests.factories import make_contact
from tests.faults.procs import ROOT, wait_until

WAIT = ("wait_3_days", "wait_time", {"wait_duration_hours": 72})


def findings(kind: str, all_firms: bool = True):
    return [f for f in check(all_firms=all_firms).findings if f.check == kind]


def waiting_workflow(acme, alice, count=3):
    specs, edges = chain(WAIT, ("tag", "add_tag", {"tag": "done"}))
    workflow = active_workflow(acme, alice, specs, edges, name="Onboarding")
    ids = start(workflow, *[make_contact(acme) for _ in range(count)])
    drain()
    return workflow, ids


def test_a_due_wait_no_one_wakes_is_late_at_its_step(acme, alice):
    workflow, ids = waiting_workflow(acme, alice)
    assert findings("late_wakes") == []
    with time_machine.travel(now() + timedelta(days=3, hours=2), tick=True):
        [late] = findings("late_wakes")
        assert (late.workflow_id, late.node_id, late.count) == (workflow.id, "wait_3_days", 3)
        assert late.summary.startswith("3 execution(s) are late at step 'wait_3_days'")
        assert "workflow 'Onboarding'" in late.summary and "(due 2 h ago" in late.summary
        drain()  # a worker comes back
        assert findings("late_wakes") == []
    assert execution(acme.id, ids[0]).status == "completed"


def test_an_execution_whose_worker_dies_again_and_again_is_named(acme, alice, app):
    specs, edges = chain(("tag", "add_tag", {"tag": "x"}))
    workflow = active_workflow(acme, alice, specs, edges)
    [execution_id] = start(workflow, make_contact(acme))
    lease = app.config["ENGINE_LEASE_SECONDS"]
    moment = now()
    with time_machine.travel(moment, tick=False) as clock:
        # Three workers claim it and die before writing back; the fourth
        # finds the third's lease expired too.
        for n in range(4):
            assert [row["id"] for row in claim_ready(10, f"worker-{n}")] == [execution_id]
            clock.shift(timedelta(seconds=lease + 1))
        [lost] = findings("lease_expiries")
        assert (lost.workflow_id, lost.node_id, lost.count) == (workflow.id, "tag", 1)
        assert "lost their worker 3 times" in lost.summary
    with configured(app, MONITOR_LEASE_EXPIRIES=4):
        assert findings("lease_expiries") == []


def test_a_receiver_that_fails_every_call_fills_the_dead_letters(acme, alice, app, receiver):
    hook = ("notify_crm", "webhook", {"url": receiver.url + "/in", "max_attempts": 1})
    specs, edges = chain(hook)
    workflow = active_workflow(acme, alice, specs, edges, name="CRM sync")
    receiver.statuses = [500] * 10
    start(workflow, *[make_contact(acme) for _ in range(5)])
    drain()
    [failing] = findings("dead_letters")
    assert (failing.workflow_id, failing.node_id, failing.count) == (workflow.id, "notify_crm", 5)
    assert "5 execution(s) failed at step 'notify_crm' of workflow 'CRM sync'" in failing.summary
    with configured(app, MONITOR_DEAD_LETTERS=6):
        assert findings("dead_letters") == []


def test_messages_no_one_delivers_are_a_backlog(acme, alice, receiver):
    hook = ("hook", "webhook", {"url": receiver.url + "/in"})
    specs, edges = chain(hook)
    workflow = active_workflow(acme, alice, specs, edges)
    start(workflow, *[make_contact(acme) for _ in range(2)])
    advance_ready_batch()  # the engine runs; no delivery worker does
    assert findings("delivery_backlog") == []
    with time_machine.travel(now() + timedelta(minutes=10), tick=True):
        [backlog] = findings("delivery_backlog")
        assert (backlog.workflow_id, backlog.detail, backlog.count) == (workflow.id, "webhook", 2)
        assert "2 webhook message(s) of step 'hook'" in backlog.summary
        drain()
        assert findings("delivery_backlog") == []
    assert len(receiver.requests) == 2


def test_paused_sending_is_a_problem(acme):
    acme.settings = {"sending": {"paused": True, "paused_reason": "bounce rate 6% over 200"}}
    db.session.commit()
    [paused] = findings("sending_paused")
    assert paused.firm_id == acme.id and "bounce rate 6% over 200" in paused.summary


def test_a_problem_notifies_the_firms_admins_once_with_a_link(acme, alice, bob, globex, charlie):
    # (With Redis, "no worker serves the queue" is open too, for every firm.)
    def late_notes(firm):
        with firm_context(firm.id):
            notes = db.session.scalars(select(Notification)).all()
        return [n for n in notes if "late at step" in n.message]

    def late_alerts():
        return db.session.scalars(select(HealthAlert).where(HealthAlert.kind == "late_wakes")).all()

    waiting_workflow(acme, alice)
    with time_machine.travel(now() + timedelta(days=3, hours=1), tick=True):
        run_monitor()
        run_monitor()  # still bad: no second notification
        notes = late_notes(acme)
        assert [n.user_id for n in notes] == [alice.id]  # admins only, of Acme only
        assert "late at step 'wait_3_days'" in notes[0].message
        assert notes[0].message.endswith("/admin/health")
        assert late_notes(globex) == []
        [alert] = late_alerts()
        assert (alert.count, alert.closed_at) == (3, None)
        drain()
        run_monitor()
        [alert] = late_alerts()
        assert alert.closed_at is not None


def test_the_gauges_show_open_problems(client, acme, alice, app):
    from prometheus_client.parser import text_string_to_metric_families

    waiting_workflow(acme, alice)
    with time_machine.travel(now() + timedelta(days=3, hours=1), tick=True):
        run_monitor()
        with configured(app, METRICS_CACHE_SECONDS=0):
            text = client.get("/metrics").get_data(as_text=True)
    values = {
        (s.name, s.labels.get("check")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert values[("automation_health_problems", "late_wakes")] == 1
    assert values[("automation_health_affected", "late_wakes")] == 3
    assert values[("automation_health_problems", "dead_letters")] == 0


def test_doctor_exits_0_when_healthy_and_1_listing_the_problems(runner, acme, alice):
    healthy = runner.invoke(args=["doctor"])
    if USING_REDIS:  # no worker runs in this test: that is a problem
        assert healthy.exit_code == 1 and "no live worker serves the engine queue" in healthy.output
    else:
        assert healthy.exit_code == 0, healthy.output
        assert "ok: no stuck work" in healthy.output
    waiting_workflow(acme, alice)
    with time_machine.travel(now() + timedelta(days=3, hours=1), tick=True):
        sick = runner.invoke(args=["doctor"])
        report = json.loads(runner.invoke(args=["doctor", "--json"]).output)
    assert sick.exit_code == 1
    assert "[late_wakes] 3 execution(s) are late at step 'wait_3_days'" in sick.output
    assert report["status"] == "problems"
    assert {f["check"] for f in report["findings"]} >= {"late_wakes"}


def test_the_health_page_shows_the_firms_problems_only(client, acme, alice, globex, charlie):
    waiting_workflow(acme, alice)
    auth = AuthActions(client)
    with time_machine.travel(now() + timedelta(days=3, hours=1), tick=True):
        auth.login(alice)
        page = client.get("/admin/health")
        assert page.status_code == 200
        body = page.get_data(as_text=True)
        assert "Late waits" in body and "are late at step" in body and "Onboarding" in body
        auth.logout()
        auth.login(charlie)
        other = client.get("/admin/health").get_data(as_text=True)
        assert "Onboarding" not in other and "are late at step" not in other
        auth.logout()


def test_marketers_do_not_see_the_health_page(client, acme, bob):
    AuthActions(client).login(bob)
    assert client.get("/admin/health").status_code in (302, 403)


@pytest.mark.skipif(not USING_REDIS, reason="workers beat in Redis")
def test_a_frozen_worker_is_missing_and_back_when_it_thaws(app, database_url, redis_url):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "WORKER_BEAT_SECONDS": "0.5",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    worker = subprocess.Popen(
        [sys.executable, "worker.py", "--no-scheduler", "--name", "frozen-one"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with configured(app, WORKER_MISSING_SECONDS=3):
            assert wait_until(lambda: findings("workers_missing") == [], timeout=90)
            worker.send_signal(signal.SIGSTOP)
            time.sleep(4)
            [missing] = findings("workers_missing")[:1]
            assert missing.detail == "frozen-one"
            assert (
                "worker frozen-one" in missing.summary and "not been heard from" in missing.summary
            )
            worker.send_signal(signal.SIGCONT)
            assert wait_until(lambda: findings("workers_missing") == [], timeout=30)
    finally:
        worker.send_signal(signal.SIGCONT)
        worker.terminate()
        worker.wait(timeout=30)
