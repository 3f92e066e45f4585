"""Every endpoint: 401 without credentials, 403 for portal users, 404 for
another firm's object, 400 naming an unknown field."""

from __future__ import annotations

import re

from app.api import load_endpoints
from tests.api.world import make_world

ENDPOINTS = load_endpoints()

MY_MODULES = ("workflows_", "graph_", "executions_", "goals_", "contacts_", "crm_")
MINE = [ep for ep in ENDPOINTS if ep.name.startswith(MY_MODULES)]
_VAR = re.compile(r"<(?:\w+:)?(\w+)>")


def url(ep, ids: dict) -> str:
    return "/api/v1" + _VAR.sub(lambda m: str(ids.get(m.group(1), 1)), ep.rule)


def valid_body(ep, mine: dict) -> dict | None:
    """A body that passes validation, naming the caller's own objects."""
    if ep.body is None:
        return None
    return {
        "WorkflowUpdate": {"name": "Renamed"},
        "TriggerUpdate": {"is_active": False},
        "NodeUpdate": {"label": "Renamed"},
        "GoalUpdate": {"name": "Renamed"},
        "ContactUpdate": {"first_name": "Renamed"},
        "TagIn": {"tag": "new"},
        "ListRef": {"list": mine["list_id"]},
        "ListUpdate": {"description": "d"},
        "FormUpdate": {"name": "Renamed"},
        "DealUpdate": {"stage": "proposal"},
        "TaskUpdate": {"title": "Renamed"},
        "TriggerRun": {"contact_id": mine["contact_id"]},
    }.get(ep.body.__name__, {})


def label(ep) -> str:
    return f"{ep.method} {ep.rule}"


# One test per check, looping over the endpoints: a parametrized test per
# endpoint would rebuild and empty the database a few hundred times.


def test_every_endpoint_requires_credentials(client):
    wrong = {}
    for ep in ENDPOINTS:
        response = client.open(url(ep, {}), method=ep.method, json={})
        if response.status_code != 401 or response.json["error"]["code"] != "unauthorized":
            wrong[label(ep)] = response.status_code
    assert wrong == {}


def test_every_endpoint_refuses_portal_users(api_as, paula):
    portal = api_as(paula)
    wrong = {}
    for ep in ENDPOINTS:
        response = portal._call(ep.method, url(ep, {}), json={})
        if response.status_code != 403 or response.json["error"]["code"] != "forbidden":
            wrong[label(ep)] = response.status_code
    assert wrong == {}


def test_every_endpoint_hides_another_firms_objects(api, acme, globex):
    mine = make_world(acme)
    theirs = make_world(globex)
    checked, wrong = 0, {}
    for ep in MINE:
        if "<" not in ep.rule:
            continue
        checked += 1
        response = api._call(ep.method, url(ep, theirs), json=valid_body(ep, mine))
        if response.status_code != 404 or response.json["error"]["code"] != "not_found":
            wrong[label(ep)] = (response.status_code, response.get_json())
    assert wrong == {}
    assert checked >= 40


def test_every_write_refuses_unknown_fields(api, acme):
    mine = make_world(acme)
    checked, wrong = 0, {}
    for ep in MINE:
        if ep.body is None:
            continue
        checked += 1
        body = {**(valid_body(ep, mine) or {}), "surprise": 1}
        response = api._call(ep.method, url(ep, mine), json=body)
        fields = (response.get_json() or {}).get("error", {}).get("fields", {})
        if response.status_code != 400 or fields.get("surprise") != ["unknown field"]:
            wrong[label(ep)] = (response.status_code, response.get_json())
    assert wrong == {}
    assert checked >= 20


def test_every_list_validates_its_query(api, acme):
    mine = make_world(acme)
    checked, wrong = 0, {}
    for ep in MINE:
        if ep.query is None:
            continue
        checked += 1
        response = api.get(url(ep, mine) + "?limit=0&nonsense=1")
        fields = (response.get_json() or {}).get("error", {}).get("fields", {})
        # limit=0 is out of range, or unknown where the endpoint is not a list.
        if response.status_code != 400 or set(fields) != {"limit", "nonsense"}:
            wrong[label(ep)] = (response.status_code, response.get_json())
    assert wrong == {}
    assert checked >= 12
