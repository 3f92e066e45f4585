"""Warm-up of a new sending domain: day N of the schedule allows
min(max, start * factor ** N) e-mails from each From domain in the firm's
calendar day; one more waits at its step for the next day's start, is sent
then, once, and none is dropped. The clock moves across days
(time-machine); both backends (docs/SENDING.md "Warm-up")."""

from __future__ import annotations

import html
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from app.automation.delivery import warmup
from app.automation.engine.jobs import drain
from app.extensions import db
from app.models import SendingDomain, Topic
from app.tenancy import firm_context
from tests.conftest import USING_POSTGRES
from tests.engine.helpers import active_workflow, chain, execution, start, states_by_node
from tests.factories import make_contact

DAY0 = datetime(2026, 12, 2, 10, tzinfo=UTC)  # a Wednesday
EMAIL = {"subject": "News", "body_text": "Hi", "max_attempts": 1}
SETTINGS = "/api/v1/settings/sending/"


def _warm(firm, timezone=None, **warm):
    with firm_context(firm.id):
        settings = dict(firm.settings or {})
        if timezone:
            settings["timezone"] = timezone
        settings["sending"] = {"warmup": {"started": "2026-12-02", **warm}}
        firm.settings = settings
        db.session.add(SendingDomain(domain="acme.example"))
        db.session.commit()


def _workflow(firm, user, name, **config):
    specs, edges = chain(("mail", "send_email", {**EMAIL, **config}))
    return active_workflow(firm, user, specs, edges, name=name)


def _at(moment):
    return time_machine.travel(moment, tick=False)


def _run(moment, workflow=None, contacts=()):
    with _at(moment):
        ids = start(workflow, *contacts) if contacts else []
        drain()
        drain()
    return ids


def _mail(firm, execution_id):
    return states_by_node(firm.id, execution_id)["mail"]


def _received(inbox) -> list[str]:
    return sorted(to for _, tos in inbox.envelopes for to in tos)


def test_the_schedule_arithmetic():
    warm = {"start": 100, "factor": 2, "max": 1000, "started": "2026-12-02"}
    assert [warmup.allowance(warm, n) for n in range(6)] == [100, 200, 400, 800, 1000, 1000]
    assert warmup.allowance({**warm, "factor": 1.5}, 3) == 337
    assert warmup.allowance({**warm, "start": 5000}, 0) == 1000
    assert warmup.allowance(warm, 10_000) == 1000  # no overflow
    tokyo = warmup.zone_of({"timezone": "Asia/Tokyo"})
    # 2 Dec 2026 16:00 UTC is 3 Dec 01:00 in Tokyo: day 1 (the second day).
    day = warmup.day_of(warm, datetime(2026, 12, 2, 16, tzinfo=UTC), tokyo)
    assert (day.number, day.allowance) == (1, 200)
    assert day.starts == datetime(2026, 12, 2, 15, tzinfo=UTC)
    assert day.ends == datetime(2026, 12, 3, 15, tzinfo=UTC)
    # Before it starts it is day 0; past max it is done.
    assert warmup.day_of(warm, datetime(2026, 11, 1, tzinfo=UTC), tokyo).number == 0
    assert warmup.day_of(warm, datetime(2026, 12, 20, tzinfo=UTC), tokyo).done


def test_over_the_days_allowance_a_message_waits_for_tomorrow_and_none_is_dropped(
    acme, alice, smtp_server
):
    _warm(acme, start=2, factor=2, max=1000)
    news = _workflow(acme, alice, "News", from_email="news@acme.example")
    other = _workflow(acme, alice, "Other")  # MAIL_FROM's domain: its own allowance
    first = [make_contact(acme, email=f"a{i}@example.test") for i in range(5)]
    with _at(DAY0):
        ids = start(news, *first)
        [mine] = start(other, make_contact(acme, email="other@example.test"))
        drain()
        drain()
    statuses = [_mail(acme, i).action_status for i in ids]
    assert statuses.count("success") == 2 and statuses.count("deferred") == 3
    held = next(_mail(acme, i) for i in ids if _mail(acme, i).action_status == "deferred")
    assert held.action_result["gate"] == "warmup"
    assert held.action_result["reason"] == "warm-up of acme.example, day 1: up to 2 e-mails a day"
    assert held.action_result["held_until"] == "2026-12-03T00:00:00+00:00"
    assert _mail(acme, mine).action_status == "success"
    assert len(smtp_server.messages) == 3

    # Still day 0 at 23:59: nothing more goes.
    _run(datetime(2026, 12, 2, 23, 59, tzinfo=UTC))
    assert len(smtp_server.messages) == 3
    # Day 1 allows 4: the 3 held go, then one of two new ones; the other waits.
    _run(datetime(2026, 12, 3, 0, 0, 1, tzinfo=UTC))
    assert all(_mail(acme, i).action_status == "success" for i in ids)
    later = [make_contact(acme, email=f"b{i}@example.test") for i in range(2)]
    more = _run(datetime(2026, 12, 3, 8, tzinfo=UTC), news, later)
    assert sorted(_mail(acme, i).action_status for i in more) == ["deferred", "success"]
    waiting = next(_mail(acme, i) for i in more if _mail(acme, i).action_status == "deferred")
    assert (
        waiting.action_result["reason"] == "warm-up of acme.example, day 2: up to 4 e-mails a day"
    )
    _run(datetime(2026, 12, 4, 0, 0, 1, tzinfo=UTC))
    _run(datetime(2026, 12, 4, 1, tzinfo=UTC))
    # Every contact got its e-mail exactly once.
    expected = sorted(c.email for c in first + later) + ["other@example.test"]
    assert _received(smtp_server) == sorted(expected)


def test_the_day_is_the_firms_and_transactional_mail_is_not_held(acme, alice, smtp_server):
    _warm(acme, timezone="Asia/Tokyo", start=1, factor=3, max=100)
    with firm_context(acme.id):
        receipts = Topic(name="Receipts", kind="transactional")
        db.session.add_all([Topic(name="News", kind="marketing", is_default=True), receipts])
        db.session.commit()
        receipts_id = receipts.id
    news = _workflow(acme, alice, "News", from_email="news@acme.example")
    bills = _workflow(acme, alice, "Bills", from_email="bills@acme.example", topic=receipts_id)
    contacts = [make_contact(acme, email=f"t{i}@example.test") for i in range(3)]
    # 10:00 UTC on 2 Dec is 19:00 in Tokyo: day 0 ends at Tokyo midnight, 15:00 UTC.
    ids = _run(DAY0, news, contacts)
    assert sorted(_mail(acme, i).action_status for i in ids) == ["deferred", "deferred", "success"]
    held = [_mail(acme, i) for i in ids if _mail(acme, i).action_status == "deferred"]
    assert {h.action_result["held_until"] for h in held} == {"2026-12-02T15:00:00+00:00"}
    [bill] = _run(DAY0 + timedelta(minutes=1), bills, contacts[:1])
    assert _mail(acme, bill).action_status == "success"  # over the allowance, not held
    # Tokyo's 3 Dec (day 1, 3 a day) starts at 15:00 UTC: the 2 held go.
    _run(datetime(2026, 12, 2, 15, 0, 1, tzinfo=UTC))
    assert all(_mail(acme, i).action_status == "success" for i in ids)
    assert len(smtp_server.messages) == 4


def test_the_settings_stamp_the_start_and_say_today_in_words(api, client, signed_in, alice, acme):
    with firm_context(acme.id):
        db.session.add(SendingDomain(domain="example.com"))
        db.session.commit()
    with _at(DAY0):
        changed = api.patch(SETTINGS, json={"warmup": {"start": 100, "factor": 2, "max": 5000}})
    assert changed.status_code == 200, changed.json
    assert changed.json["warmup"]["started"] == "2026-12-02"
    with _at(DAY0 + timedelta(days=2)):
        preview = api.get(SETTINGS).json["preview"]
        assert any(
            line.startswith("Day 3 of warm-up: up to 400 e-mails today from example.com (0 so far)")
            for line in preview
        ), preview
        token = signed_in(alice)
        page = client.get("/sending").get_data(as_text=True)
        assert "Day 3 of warm-up: up to 400 e-mails today from example.com" in page
        assert 'name="warmup_start" value="100"' in page
        # The page's form changes it; a bad factor names the field.
        form = {
            "csrf_token": token,
            "cap_action": "defer",
            "warmup_start": "50",
            "warmup_factor": "3",
            "warmup_max": "1000",
            "warmup_started": "2026-12-03",
        }
        assert client.post("/sending/pacing", data=form).status_code == 302
        words = client.get("/sending").get_data(as_text=True)
        assert "Day 2 of warm-up: up to 150 e-mails today from example.com" in words
        bad = client.post("/sending/pacing", data={**form, "warmup_factor": "20"})
        assert bad.status_code == 400
        assert "warmup.factor: must be at most 10" in bad.get_data(as_text=True)
    bad = api.patch(SETTINGS, json={"warmup": {"start": 0}})
    assert bad.status_code == 422 and "warmup.start" in bad.json["error"]["fields"]
    bad = api.patch(SETTINGS, json={"warmup": {"start": 5, "started": "tomorrow"}})
    assert bad.status_code == 422 and "warmup.started" in bad.json["error"]["fields"]


def test_the_timeline_and_the_canvas_count_say_why_it_waits(client, auth, acme, alice, smtp_server):
    from app.automation.analytics import node_live_counts

    _warm(acme, start=1, factor=2, max=100)
    news = _workflow(acme, alice, "News", from_email="news@acme.example")
    contacts = [make_contact(acme, email=f"c{i}@example.test") for i in range(3)]
    with _at(DAY0):
        ids = _run(DAY0, news, contacts)
        held = next(i for i in ids if _mail(acme, i).action_status == "deferred")
        with firm_context(acme.id):
            counts = node_live_counts(news)["mail"]
        assert counts["held"] == 2 and counts["held_text"] == "2 held by the warm-up"
        auth.login(alice)
        page = client.get(f"/contacts/{execution(acme.id, held).contact_id}").get_data(as_text=True)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split()).replace(" :", ":")
    assert "Held: warm-up of acme.example, day 1: up to 1 e-mail a day" in text


@pytest.mark.skipif(not USING_POSTGRES, reason="two writers at once need PostgreSQL")
def test_two_workers_cannot_both_take_the_last_email_of_the_day(app, acme):
    """Worker A lets the day's last e-mail through and has not committed yet;
    worker B's gate waits for A's transaction and then counts A's row."""
    from app.automation.delivery.gates import Candidate, GateRun
    from app.models import OutboxMessage

    # Day 1 of the warm-up is today: the workers below send now.
    _warm(acme, start=1, factor=2, max=100, started=datetime.now(UTC).date().isoformat())
    outbox = OutboxMessage.__table__

    def candidate(n):
        return Candidate(
            firm_id=acme.id,
            channel="email",
            address=f"w{n}@example.test",
            execution_id=n,
            moment=datetime.now(UTC),
        )

    answers: dict[str, str] = {}
    with db.engine.connect() as a, db.engine.connect() as b:
        a.begin()
        first = candidate(1)
        answers["a"] = GateRun(a, "step", [first]).check(first).action
        a.execute(
            outbox.insert().values(
                firm_id=acme.id,
                channel="email",
                status="pending",
                from_address="automation@localhost",
                message_id="w1",
                created_at=datetime.now(UTC),
            )
        )

        def worker_b():
            with app.app_context():
                b.begin()
                second = candidate(2)
                answers["b"] = GateRun(b, "step", [second]).check(second).action
                b.rollback()

        thread = threading.Thread(target=worker_b)
        thread.start()
        thread.join(timeout=1.5)
        assert thread.is_alive()  # B waits on A's lock
        a.commit()
        thread.join(timeout=10)
    assert answers == {"a": "send", "b": "defer"}
