"""The settings pages: a workflow's send window and priority in the
builder's settings panel, the firm's pacing on the Sending page, each with
its plain-language preview; bad input is a form error naming the field and
changes nothing."""

from __future__ import annotations

from app.extensions import db
from app.models import Firm, Workflow
from app.tenancy import firm_context
from tests.factories import make_workflow

HX = {"HX-Request": "true"}


def test_the_builder_sets_a_window_and_a_priority_with_a_preview(client, signed_in, alice, acme):
    workflow = make_workflow(acme)
    token = signed_in(alice)
    url = f"/automation/builder/{workflow.id}/settings"
    form = {
        "csrf_token": token,
        "name": workflow.name,
        "window_on": "on",
        "window_days": ["mon", "tue", "wed", "thu", "fri"],
        "window_start": "09:00",
        "window_end": "17:00",
        "window_timezone": "contact",
        "priority": "2",
    }
    saved = client.post(url, data=form, headers=HX)
    assert saved.status_code == 200
    page = saved.get_data(as_text=True)
    assert "A contact in Tokyo gets this between 09:00 and 17:00 Tokyo time, Mon-Fri" in page
    with firm_context(acme.id):
        db.session.expire_all()
        stored = db.session.get(Workflow, workflow.id)
        assert stored.send_window["days"] == ["mon", "tue", "wed", "thu", "fri"]
        assert stored.priority == 2
    bad = client.post(url, data={**form, "window_end": "08:00"}, headers=HX)
    assert bad.status_code == 422
    assert "before it starts" in bad.get_data(as_text=True)
    zone = client.post(url, data={**form, "window_timezone": "Moon/Base"}, headers=HX)
    assert zone.status_code == 422 and "IANA" in zone.get_data(as_text=True)
    with firm_context(acme.id):
        db.session.expire_all()
        assert db.session.get(Workflow, workflow.id).send_window["end"] == "17:00"


def test_the_sending_page_saves_pacing_and_says_it_in_words(client, signed_in, alice, acme):
    token = signed_in(alice)
    form = {
        "csrf_token": token,
        "cap_max_0": "3",
        "cap_days_0": "7",
        "cap_action": "defer",
        "max_per_second": "50",
        "domain_limits": "gmail.com: 20\n",
        "pause_percent": "5",
        "pause_window": "200",
    }
    assert client.post("/sending/pacing", data=form).status_code == 302
    page = client.get("/sending").get_data(as_text=True)
    assert "A contact gets at most 3 marketing e-mails per 7 days" in page
    assert "At most 20 e-mails a second go to gmail.com addresses." in page
    assert "more than 5% of the last 200 e-mails" in page
    bad = client.post("/sending/pacing", data={**form, "cap_max_0": "-2"})
    assert bad.status_code == 400
    assert "frequency_caps[0].max: must be at least 0" in bad.get_data(as_text=True)
    with firm_context(acme.id):
        db.session.expire_all()
        caps = db.session.get(Firm, acme.id).settings["sending"]["frequency_caps"]
    assert caps == [{"max": 3, "per_days": 7.0}]


def test_resume_from_the_page(client, signed_in, alice, acme):
    with firm_context(acme.id):
        firm = db.session.get(Firm, acme.id)
        firm.settings = {"sending": {"paused": True, "paused_reason": "too many bounces"}}
        db.session.commit()
    token = signed_in(alice)
    page = client.get("/sending").get_data(as_text=True)
    assert "Resume sending" in page and "too many bounces" in page
    assert client.post("/sending/resume", data={"csrf_token": token}).status_code == 302
    with firm_context(acme.id):
        db.session.expire_all()
        assert db.session.get(Firm, acme.id).settings["sending"]["paused"] is False
