"""Times in the reader's zone without microseconds, durations in words,
step names instead of ids, and the navigation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.automation.lifecycle.publishing import publish
from app.extensions import db
from app.models import Firm, User, Workflow
from app.tenancy import firm_context
from app.web.formatting import human_duration, setting_value
from tests.factories import make_workflow


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (48 * 3600, "2 days"),
        (60, "1 minute"),
        (0.016666666666666666 * 3600, "1 minute"),
        (5400, "1 hour 30 minutes"),
        (90061, "1 day 1 hour"),
        (45, "45 seconds"),
        (0, "0 seconds"),
    ],
)
def test_durations_read_as_words(seconds, text):
    assert human_duration(seconds) == text


def test_settings_named_as_durations_are_shown_as_durations(app):
    with app.test_request_context():
        assert setting_value("wait_duration_hours", 48.0) == "2 days"
        assert setting_value("timeout_seconds", 90) == "1 minute 30 seconds"
        assert setting_value("subject", "Hi") == "Hi"
        assert setting_value("configuration.tag", None) == "—"
        assert setting_value("until", "2026-03-10T09:00:00.123456+00:00") == "2026-03-10 09:00 UTC"


def test_the_publish_diff_shows_durations_not_floats(client, auth, acme, alice):
    workflow = make_workflow(
        acme,
        nodes=[
            {
                "node_id": "wait",
                "node_type": "wait_time",
                "configuration": {"wait_duration_hours": 48},
            },
            {"node_id": "tag", "node_type": "add_tag", "configuration": {"tag": "done"}},
        ],
        edges=[("wait", "tag")],
        triggers=[{"trigger_type": "manual"}],
    )
    with firm_context(acme.id):
        publish(workflow, alice)
        wf = db.session.get(Workflow, workflow.id)
        wf.node_by_key("wait").configuration = {"wait_duration_hours": 0.016666666666666666}
        db.session.commit()
    auth.login(alice)
    page = client.get(f"/automation/{workflow.id}/publish").get_data(as_text=True)
    assert "2 days" in page and "1 minute" in page
    assert "0.016666666666666666" not in page


def test_times_follow_the_users_zone_then_the_firms(client, auth, acme, alice):
    with firm_context(acme.id):
        wf = make_workflow(acme, name="Zones")
        db.session.get(Workflow, wf.id).created_at = datetime(2026, 3, 10, 9, 0, 5, 123456, UTC)
        db.session.commit()
    auth.login(alice)
    page = client.get("/automation").get_data(as_text=True)
    assert "UTC" in page and ".123456" not in page

    token = auth.csrf_token("/admin")
    response = client.post(
        "/admin/settings", data={"timezone": "Europe/Berlin", "csrf_token": token}
    )
    assert response.status_code == 302
    assert db.session.get(Firm, acme.id).settings["timezone"] == "Europe/Berlin"
    page = client.get("/account/timezone").get_data(as_text=True)
    assert "The firm&#39;s (Europe/Berlin)" in page or "The firm's (Europe/Berlin)" in page
    assert "CET" in page or "CEST" in page

    token = auth.csrf_token("/account/timezone")
    client.post("/account/timezone", data={"timezone": "America/New_York", "csrf_token": token})
    with firm_context(acme.id):
        me = db.session.scalars(select(User).where(User.email == alice.email)).one()
        assert me.timezone == "America/New_York"
    assert "EST" in client.get("/account/timezone").get_data(as_text=True)


def test_a_made_up_zone_is_refused_and_nothing_changes(client, auth, acme, alice):
    auth.login(alice)
    token = auth.csrf_token("/account/timezone")
    response = client.post(
        "/account/timezone", data={"timezone": "Mars/Olympus", "csrf_token": token}
    )
    assert response.status_code == 422
    assert "not a time zone" in response.get_data(as_text=True)
    response = client.post("/admin/settings", data={"timezone": "Nowhere", "csrf_token": token})
    assert response.status_code == 422
    with firm_context(acme.id):
        me = db.session.scalars(select(User).where(User.email == alice.email)).one()
        assert me.timezone is None
        assert "timezone" not in (db.session.get(Firm, acme.id).settings or {})


def test_the_navigation_has_approvals_and_marks_one_section(client, auth, alice):
    auth.login(alice)
    page = client.get("/automation/approvals").get_data(as_text=True)
    assert (
        '<a href="/automation/approvals" class="active" aria-current="page">Approvals</a>' in page
    )
    assert page.count('aria-current="page"') == 1
    assert 'href="/static/favicon.svg"' in page
