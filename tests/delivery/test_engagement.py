"""Machine opens and clicks are kept, marked, and not counted as a
person's engagement (no trigger, no condition; analytics shows them apart)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from app.automation.analytics.flow_queries import Period, email_counts
from app.automation.delivery.dispatcher import deliver_due
from app.automation.delivery.engagement import click_reason, open_reason
from app.automation.engine.context import load_events
from app.clock import now
from app.extensions import db
from app.models import EventLog, TrackingEvent
from app.tenancy import firm_context
from tests.delivery.conftest import configured, queue_message

APPLE_MPP = "Mozilla/5.0"
SAFE_LINKS = "Mozilla/4.0 (compatible; ms-office; MSOffice 16) SafeLinks"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.mark.parametrize(
    "agent, machine",
    [
        (APPLE_MPP, True),
        ("Mozilla/5.0 (compatible; Barracuda Sentinel)", True),
        (FIREFOX, False),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0 Safari/537.36 Edg/126.0",
            False,
        ),
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
            False,
        ),
    ],
)
def test_opens_by_privacy_proxies_and_scanners_are_machine(agent, machine):
    assert (open_reason(agent) is not None) is machine


def test_clicks_by_scanners_or_seconds_after_delivery_are_machine(app):
    sent = now()
    with app.app_context():
        assert click_reason(SAFE_LINKS, "https://x.example", sent, sent + timedelta(hours=1))
        assert click_reason(
            "python-requests/2.32", "https://x.example", sent, sent + timedelta(hours=1)
        )
        with configured(app, SCANNER_CLICK_SECONDS=10):
            assert "within 10 s" in click_reason(
                FIREFOX, "https://x.example", sent, sent + timedelta(seconds=3)
            )
            assert (
                click_reason(FIREFOX, "https://x.example", sent, sent + timedelta(minutes=5))
                is None
            )
        assert "hidden link" in click_reason(
            FIREFOX, "http://localhost/t/hp", sent, sent + timedelta(hours=1)
        )


def _sent_links(acme, smtp_server):
    message = queue_message(
        acme,
        "send_email",
        {"subject": "S", "body_html": "<p><a href='https://example.com/a'>a</a></p>"},
    )
    deliver_due()
    html = smtp_server.messages[0].get_body(preferencelist=("html",)).get_content()
    links = re.findall(r"href=[\"']http://localhost(/t/c/[^\"']+)", html)
    pixel = re.search(r'src="http://localhost(/t/o/[^"]+)"', html).group(1)
    return message, links, pixel


def test_machines_are_kept_but_only_people_count(client, acme, smtp_server):
    message, (link, decoy), pixel = _sent_links(acme, smtp_server)
    with time_machine.travel(now() + timedelta(minutes=5), tick=False):
        client.get(pixel, headers={"User-Agent": APPLE_MPP})
        assert client.get(decoy, headers={"User-Agent": FIREFOX}).status_code == 302
        client.get(link, headers={"User-Agent": FIREFOX})  # with the decoy click: a scanner
    with time_machine.travel(now() + timedelta(hours=2), tick=False):
        client.get(link, headers={"User-Agent": FIREFOX})  # the person, later
    with firm_context(acme.id):
        events = db.session.scalars(select(TrackingEvent).order_by(TrackingEvent.id)).all()
        assert [(e.kind, e.machine) for e in events] == [
            ("open", True),
            ("click", True),
            ("click", True),
            ("click", False),
        ]
        assert events[0].detail["machine"].startswith("privacy proxy")
        bus = db.session.scalars(
            select(EventLog.event_type).where(EventLog.event_type.like("email_%"))
        ).all()
        assert bus == ["email_clicked"]  # only the person's click reaches triggers
        found = load_events([message.contact_id], message.workflow_id)[message.contact_id]
        assert [(kind, node) for kind, node, _ in found] == [("click", "step")]
        counts = email_counts(Period(message.workflow_id))["step"]
    assert counts["opened"] == 0 and counts["opened_by_machines"] == 1
    assert counts["clicked"] == 1 and counts["clicked_by_machines"] == 1
