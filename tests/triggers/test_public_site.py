"""Site tracking: the snippet, the beacon, known and unknown visitors."""

from __future__ import annotations

import json

from sqlalchemy import select

from app.automation.triggers.visitor import COOKIE, public_firm_key, visitor_cookie_value
from app.extensions import db
from app.models import SiteVisit
from app.tenancy import firm_context
from tests.factories import make_contact
from tests.triggers.conftest import executions_of


def _visits(firm):
    with firm_context(firm.id):
        return list(db.session.scalars(select(SiteVisit).order_by(SiteVisit.id)))


def _beacon(client, firm, url="https://acme.example/pricing", **extra):
    body = {"firm": public_firm_key(firm.id), "url": url, "referrer": "", **extra}
    # What navigator.sendBeacon sends: JSON in a text/plain body.
    return client.post(
        "/t/v",
        data=json.dumps(body),
        content_type="text/plain;charset=UTF-8",
        headers={"Origin": "https://acme.example", "User-Agent": 'Mozilla/5.0 "quoted" <b>'},
    )


def test_the_snippet_is_javascript(client):
    response = client.get("/t/track.js")
    assert response.status_code == 200
    assert response.mimetype == "application/javascript"
    assert b"/t/v" in response.data and b"data-firm" in response.data


def test_an_unknown_visitor_is_only_recorded(client, acme, live_workflow):
    live_workflow(acme, "page_visited")
    response = _beacon(client, acme, visitor="abc123", referrer="https://google.example/?q=<x>")
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://acme.example"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    (visit,) = _visits(acme)
    assert (visit.visitor_id, visit.contact_id) == ("abc123", None)
    assert visit.referrer == "https://google.example/?q=<x>"
    assert visit.user_agent == 'Mozilla/5.0 "quoted" <b>'
    assert executions_of(acme) == []


def test_a_known_visitor_fires_page_visited_with_the_url_filter_and_site_activity(
    client, acme, live_workflow
):
    pricing = live_workflow(acme, "page_visited", {"url_contains": "/pricing"}, name="Pricing")
    blog = live_workflow(acme, "page_visited", {"url_contains": "/blog"}, name="Blog")
    active = live_workflow(acme, "site_activity", name="Active")
    contact = make_contact(acme)
    _beacon(client, acme, visitor="v1")  # before the cookie: anonymous
    client.set_cookie(COOKIE, visitor_cookie_value(acme.id, contact.id))
    assert _beacon(client, acme, visitor="v1").status_code == 204
    started = {e.workflow_id: e for e in executions_of(acme)}
    assert set(started) == {pricing.id, active.id}
    assert blog.id not in started
    assert started[pricing.id].context_data["url"] == "https://acme.example/pricing"
    # The earlier anonymous visit of the same browser now belongs to the contact.
    assert [v.contact_id for v in _visits(acme)] == [contact.id, contact.id]


def test_a_forged_cookie_or_another_firms_cookie_is_ignored(client, acme, globex, live_workflow):
    live_workflow(acme, "site_activity")
    stranger = make_contact(globex)
    client.set_cookie(COOKIE, visitor_cookie_value(globex.id, stranger.id))
    _beacon(client, acme)
    client.set_cookie(COOKIE, visitor_cookie_value(acme.id, stranger.id).replace(".", "x", 1))
    _beacon(client, acme)
    assert [v.contact_id for v in _visits(acme)] == [None, None]
    assert executions_of(acme) == []


def test_a_tampered_firm_key_is_404(client, acme):
    key = public_firm_key(acme.id)
    response = client.post(
        "/t/v", json={"firm": key[:-1] + ("0" if key[-1] != "0" else "1"), "url": "https://a.b/"}
    )
    assert response.status_code == 404
    assert (
        client.post("/t/v", json={"firm": f"{acme.id}", "url": "https://a.b/"}).status_code == 404
    )
    assert _visits(acme) == []


def test_bad_beacons_are_400_naming_the_field(client, acme):
    key = public_firm_key(acme.id)
    assert client.post("/t/v", data="not json", content_type="text/plain").status_code == 400
    response = client.post("/t/v", json={"firm": key, "url": "javascript:alert(1)"})
    assert response.status_code == 400
    assert "url" in response.get_json()["error"]["fields"]
    response = client.post("/t/v", json={"firm": key, "url": "https://a.b/", "visitor": "<x>"})
    assert "visitor" in response.get_json()["error"]["fields"]


def test_the_preflight_allows_the_calling_origin(client):
    response = client.options("/t/v", headers={"Origin": "https://shop.example"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
