"""Opens and clicks taken by the endpoint as one committed row each, and
processed in batches (app/automation/delivery/tracking_hits.py): nothing
is lost or counted twice when a batch dies, when two workers take batches
at once, or when one hit's trigger fails."""

from __future__ import annotations

import threading
import time

import pytest
from rq import SimpleWorker
from sqlalchemy import func, select

from app import queue
from app.automation.delivery import tracking_hits
from app.automation.delivery.dispatcher import deliver_due
from app.automation.delivery.engagement import decoy_url
from app.automation.delivery.tracking import make_token
from app.automation.triggers import bus
from app.extensions import db
from app.models import EventLog, TrackingEvent, TrackingHit
from app.tenancy import firm_context
from tests.delivery.conftest import queue_message
from tests.factories import make_contact, make_firm

LINK = "https://example.com/offer"


@pytest.fixture
def deferred(app, monkeypatch):
    monkeypatch.setitem(app.config, "TRACKING_DEFERRED", True)


def _sent(firm, count=1):
    messages = []
    for n in range(count):
        contact = make_contact(firm, email=f"reader{n}@example.com")
        messages.append(
            queue_message(firm, "send_email", {"subject": "Hi", "body_text": "Hi"}, contact=contact)
        )
    deliver_due()
    return messages


def _pixel(message):
    return f"/t/o/{make_token('open', message.firm_id, message.id)}.gif"


def _click(message, url=LINK):
    return f"/t/c/{make_token('click', message.firm_id, message.id, url)}"


def _count(model, firm, *where) -> int:
    with firm_context(firm.id):
        value = db.session.scalar(select(func.count()).select_from(model).where(*where))
    db.session.rollback()
    return int(value or 0)


def test_a_deferred_hit_is_committed_before_the_answer_and_processed_in_a_batch(
    client, acme, smtp_server, deferred
):
    messages = _sent(acme, 3)
    for message in messages:
        assert client.get(_pixel(message)).status_code == 200
        response = client.get(_click(message))
        assert response.status_code == 302 and response.headers["Location"] == LINK
        assert "atv=" in response.headers["Set-Cookie"]  # the contact came from the hit
    assert _count(TrackingHit, acme) == 6
    assert _count(TrackingEvent, acme) == 0
    assert tracking_hits.process_hits() == 6
    assert _count(TrackingHit, acme) == 0
    assert _count(TrackingEvent, acme, TrackingEvent.kind == "open") == 3
    assert _count(TrackingEvent, acme, TrackingEvent.kind == "click") == 3
    assert _count(EventLog, acme, EventLog.event_type == "email_opened") == 3
    assert _count(EventLog, acme, EventLog.event_type == "email_clicked") == 3
    with firm_context(acme.id):
        event = db.session.scalars(
            select(EventLog).where(EventLog.event_type == "email_clicked")
        ).first()
        assert event.data["url"] == LINK and event.data["email_id"] in {m.id for m in messages}
    assert tracking_hits.process_hits() == 0  # a second job finds nothing


def test_a_token_of_another_firm_inserts_no_hit(client, acme, smtp_server, deferred):
    [message] = _sent(acme)
    globex = make_firm("Globex")
    foreign = f"/t/o/{make_token('open', globex.id, message.id)}.gif"
    assert client.get(foreign).status_code == 404
    assert client.get(f"/t/c/{make_token('click', globex.id, message.id, LINK)}").status_code == 404
    assert _count(TrackingHit, acme) == 0 and _count(TrackingHit, globex) == 0


def test_a_batch_killed_midway_leaves_its_hits_and_the_next_counts_each_once(
    client, acme, smtp_server, deferred, monkeypatch
):
    messages = _sent(acme, 2)
    for message in messages:
        client.get(_pixel(message))
        client.get(_pixel(message))  # a repeated open: recorded, one bus event
    real = tracking_hits._record_events

    def killed(firm_id, hits):
        real(firm_id, hits)  # the events are written, then the worker dies
        raise SystemExit("killed")

    monkeypatch.setattr(tracking_hits, "_record_events", killed)
    with pytest.raises(SystemExit):
        tracking_hits.process_hits()
    db.session.rollback()  # what the dead worker's connection does
    assert _count(TrackingHit, acme) == 4 and _count(TrackingEvent, acme) == 0
    monkeypatch.setattr(tracking_hits, "_record_events", real)
    assert tracking_hits.process_hits() == 4
    assert tracking_hits.process_hits() == 0
    assert _count(TrackingEvent, acme, TrackingEvent.kind == "open") == 4
    assert _count(EventLog, acme, EventLog.event_type == "email_opened") == 2


def test_one_hit_the_bus_refuses_holds_back_no_other(
    client, acme, smtp_server, deferred, monkeypatch
):
    messages = _sent(acme, 3)
    bad = messages[1]
    for message in messages:
        client.get(_click(message))
    real = bus._forget_unknown_contacts

    def refuses(firm_id, events):
        if any(event["data"].get("email_id") == bad.id for event in events):
            raise RuntimeError("a trigger that cannot take this event")
        return real(firm_id, events)

    monkeypatch.setattr(bus, "_forget_unknown_contacts", refuses)
    assert tracking_hits.process_hits() == 3
    # Every click is recorded; the refused one starts nothing.
    assert _count(TrackingEvent, acme, TrackingEvent.kind == "click") == 3
    with firm_context(acme.id):
        emails = [
            data["email_id"]
            for data in db.session.scalars(
                select(EventLog.data).where(EventLog.event_type == "email_clicked")
            )
        ]
    assert sorted(emails) == sorted(m.id for m in messages if m is not bad)
    assert _count(TrackingHit, acme) == 0


def test_a_click_with_the_hidden_link_in_the_same_batch_is_a_machine(
    client, acme, smtp_server, deferred
):
    [message] = _sent(acme)
    client.get(_click(message, decoy_url()))
    client.get(_click(message))
    assert tracking_hits.process_hits() == 2
    with firm_context(acme.id):
        clicks = db.session.scalars(
            select(TrackingEvent).where(TrackingEvent.kind == "click").order_by(TrackingEvent.id)
        ).all()
        assert [click.machine for click in clicks] == [True, True]
        assert clicks[1].detail["machine"] == "clicked with the hidden link"
    assert _count(EventLog, acme, EventLog.event_type == "email_clicked") == 0


def test_the_embedded_mode_processes_the_hit_in_the_request(client, acme, smtp_server, app):
    assert app.config["TRACKING_DEFERRED"] is False
    [message] = _sent(acme)
    assert client.get(_pixel(message)).status_code == 200
    assert _count(TrackingHit, acme) == 0
    assert _count(TrackingEvent, acme, TrackingEvent.kind == "open") == 1
    assert _count(EventLog, acme, EventLog.event_type == "email_opened") == 1


@pytest.mark.postgres
def test_two_workers_at_once_take_different_hits(client, acme, smtp_server, deferred, app):
    messages = _sent(acme, 4)
    for message in messages:
        client.get(_pixel(message))
    holding, release = threading.Event(), threading.Event()
    real = tracking_hits._record_events
    taken: dict[str, int] = {}

    def slow(firm_id, hits):
        holding.set()
        assert release.wait(20)
        return real(firm_id, hits)

    def first_worker():
        with app.app_context():
            taken["first"] = tracking_hits._process_firm(acme.id, 2, dispatch=True)

    tracking_hits._record_events = slow
    try:
        thread = threading.Thread(target=first_worker)
        thread.start()
        assert holding.wait(20)
        tracking_hits._record_events = real
        # The first worker holds 2 hits locked: the second takes the others.
        taken["second"] = tracking_hits.process_hits()
        release.set()
        thread.join(20)
    finally:
        tracking_hits._record_events = real
        release.set()
    assert taken == {"first": 2, "second": 2}
    assert _count(TrackingEvent, acme) == 4
    assert _count(EventLog, acme, EventLog.event_type == "email_opened") == 4


@pytest.mark.postgres
@pytest.mark.redis
def test_hits_kick_one_job_at_a_time_that_a_real_worker_runs(
    client, acme, smtp_server, deferred, app
):
    connection = queue.redis_connection()
    engine = queue.rq_queue("engine")
    engine.empty()
    queue.clear_kick("tracking")
    marker = f"{app.config['QUEUE_PREFIX'] or 'automation'}:kick:tracking"

    def tracking_jobs(count: int) -> list:
        # The requests' kicks are made by a thread of this process, soon.
        deadline = time.monotonic() + 5
        while True:
            jobs = [job for job in engine.jobs if job.func_name.endswith("run_tracking_job")]
            if len(jobs) >= count or time.monotonic() > deadline:
                return jobs
            time.sleep(0.01)

    messages = _sent(acme, 4)
    for message in messages[:3]:
        client.get(_pixel(message))
    # Kicks are coalesced: the first enqueued a job, the others found it.
    assert len(tracking_jobs(1)) == 1
    time.sleep(0.1)
    assert len(tracking_jobs(1)) == 1
    worker = SimpleWorker([engine], connection=connection)
    with app.app_context():
        worker.work(burst=True)
    assert _count(TrackingHit, acme) == 0
    assert _count(EventLog, acme, EventLog.event_type == "email_opened") == 3
    # The job let its marker go: the next hit kicks a new one.
    assert not connection.exists(marker)
    client.get(_pixel(messages[3]))
    assert len(tracking_jobs(1)) == 1
    with app.app_context():
        worker.work(burst=True)
    assert _count(EventLog, acme, EventLog.event_type == "email_opened") == 4


def test_a_job_holds_the_kick_while_it_works_and_looks_again_after(
    client, acme, smtp_server, deferred, app, monkeypatch
):
    """A hit committed while the job works is taken by the same job."""
    firm_id = acme.id
    pixels = [_pixel(message) for message in _sent(acme, 2)]
    client.get(pixels[0])
    real = tracking_hits.process_hits
    rounds = []

    def counted(limit=tracking_hits.BATCH):
        if len(rounds) == 1:  # between the first round and the next
            client.get(pixels[1])
        done = real(limit)
        rounds.append(done)
        return done

    monkeypatch.setattr(tracking_hits, "process_hits", counted)
    monkeypatch.setitem(app.config, "TRACKING_LINGER_MS", 1)
    assert tracking_hits.run_tracking_job() == 2
    assert rounds[:2] == [1, 1] and rounds[-1] == 0
    with firm_context(firm_id):
        opened = select(func.count()).where(EventLog.event_type == "email_opened")
        assert db.session.scalar(opened) == 2


def test_the_waiting_hits_are_a_gauge(client, acme, smtp_server, deferred):
    from app.automation.operations.metrics import _database_gauges

    def waiting() -> float:
        [family] = [f for f in _database_gauges() if f.name == "automation_tracking_hits_waiting"]
        return family.samples[0].value

    [message] = _sent(acme)
    client.get(_pixel(message))
    client.get(_click(message))
    assert waiting() == 2
    tracking_hits.process_hits()
    assert waiting() == 0
