"""Every endpoint: 401 without credentials, 403 for portal users, 404 for
another firm's object, 400 naming an unknown field."""

from __future__ import annotations

import re

import pytest

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


def ids_of(ep) -> str:
    return f"{ep.method} {ep.rule}"


@pytest.mark.parametrize("ep", ENDPOINTS, ids=ids_of)
def test_it_requires_credentials(client, ep):
    response = client.open(url(ep, {}), method=ep.method, json={})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("ep", ENDPOINTS, ids=ids_of)
def test_it_refuses_portal_users(api_as, paula, ep):
    response = api_as(paula)._call(ep.method, url(ep, {}), json={})
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


WITH_IDS = [ep for ep in MINE if "<" in ep.rule]


@pytest.mark.parametrize("ep", WITH_IDS, ids=ids_of)
def test_another_firms_objects_are_not_found(api, acme, globex, ep):
    mine = make_world(acme)
    theirs = make_world(globex)
    response = api._call(ep.method, url(ep, theirs), json=valid_body(ep, mine))
    assert response.status_code == 404, response.json
    assert response.json["error"]["code"] == "not_found"


WITH_BODY = [ep for ep in MINE if ep.body is not None]


@pytest.mark.parametrize("ep", WITH_BODY, ids=ids_of)
def test_unknown_fields_are_refused(api, acme, ep):
    mine = make_world(acme)
    body = {**(valid_body(ep, mine) or {}), "surprise": 1}
    response = api._call(ep.method, url(ep, mine), json=body)
    assert response.status_code == 400, response.json
    assert response.json["error"]["fields"]["surprise"] == ["unknown field"]
