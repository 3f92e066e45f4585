"""GET /metrics: Prometheus text that parses, with the contract's families,
whose values move when work is done (docs/CONTRACT.md "Operations")."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from prometheus_client.parser import text_string_to_metric_families

from app.automation.engine.jobs import drain
from app.automation.triggers.bus import emit
from app.clock import now
from tests.delivery.conftest import configured
from tests.engine.helpers import active_workflow, chain, execution, start
from tests.factories import make_contact

FAMILIES = {
    "automation_executions",
    "automation_steps",
    "automation_step_seconds",
    "automation_queue_depth",
    "automation_waits_due",
    "automation_wake_lateness_seconds",
    "automation_outbox_messages",
    "automation_deliveries",
    "automation_events",
}


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    samples = {}
    names = set()
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        names.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    samples[("__families__", ())] = names
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_move_when_work_is_done(app, client, acme, alice, receiver):
    hook = ("hook", "webhook", {"url": receiver.url + "/in"})
    pause = ("pause", "wait_time", {"wait_duration_hours": 1})
    specs, edges = chain(hook, ("tag", "add_tag", {"tag": "hooked"}), pause)
    workflow = active_workflow(acme, alice, specs, edges)
    contacts = [make_contact(acme) for _ in range(3)]
    with configured(app, METRICS_CACHE_SECONDS=0):
        before = scrape(client)
        assert before[("__families__", ())] >= FAMILIES

        ids = start(workflow, *contacts)
        emit(acme.id, "page_visited", contacts[0].id, {"url": "/pricing"})
        drain()
        middle = scrape(client)
        assert (
            value(middle, "automation_executions_total", status="running")
            - value(before, "automation_executions_total", status="running")
            == 3
        )
        grew = value(middle, "automation_steps_total", node_type="webhook", status="success")
        assert (
            grew - value(before, "automation_steps_total", node_type="webhook", status="success")
            == 3
        )
        assert value(middle, "automation_steps_total", node_type="add_tag", status="success") >= 3
        assert (
            value(middle, "automation_step_seconds_count", node_type="webhook") >= 6
        )  # wait + resume
        assert (
            value(middle, "automation_deliveries_total", channel="webhook", result="sent")
            - value(before, "automation_deliveries_total", channel="webhook", result="sent")
            == 3
        )
        assert (
            value(middle, "automation_events_total", type="page_visited")
            - value(before, "automation_events_total", type="page_visited")
            == 1
        )
        assert value(middle, "automation_outbox_messages", status="sent") == 3
        assert value(middle, "automation_executions_active", status="waiting") == 3
        assert value(middle, "automation_waits_due") == 0

        # Seventy minutes on, the hour-long waits are ten minutes overdue: a
        # gauge, then the lateness histogram when a worker picks them up.
        with time_machine.travel(now() + timedelta(minutes=70), tick=True):
            assert value(scrape(client), "automation_waits_due") == 3
            drain()
            after = scrape(client)
        assert execution(acme.id, ids[0]).status == "completed"
        grew = value(after, "automation_wake_lateness_seconds_count") - value(
            middle, "automation_wake_lateness_seconds_count"
        )
        assert grew == 3
        on_time = value(after, "automation_wake_lateness_seconds_bucket", le="300.0") - value(
            middle, "automation_wake_lateness_seconds_bucket", le="300.0"
        )
        assert on_time == 0  # ten minutes late: past the 300 s bucket
        assert (
            value(after, "automation_executions_total", status="completed")
            - value(before, "automation_executions_total", status="completed")
            == 3
        )
        assert value(after, "automation_waits_due") == 0


def test_a_failing_receiver_shows_as_failed_deliveries(app, client, acme, alice, receiver):
    hook = ("hook", "webhook", {"url": receiver.url + "/in", "max_attempts": 1})
    specs, edges = chain(hook)
    workflow = active_workflow(acme, alice, specs, edges)
    receiver.statuses = [500]
    with configured(app, METRICS_CACHE_SECONDS=0):
        before = scrape(client)
        start(workflow, make_contact(acme))
        drain()
        after = scrape(client)
    for name, labels in [
        ("automation_deliveries_total", {"channel": "webhook", "result": "failed"}),
        ("automation_executions_total", {"status": "failed"}),
    ]:
        assert value(after, name, **labels) - value(before, name, **labels) == 1
    assert value(after, "automation_outbox_messages", status="failed") == 1


def test_metrics_token_is_required_when_set(app, client):
    with configured(app, METRICS_TOKEN="s3cret-metrics"):
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        scrape(client, Authorization="Bearer s3cret-metrics")
    assert client.get("/metrics").status_code == 200
