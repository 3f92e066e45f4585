"""An unknown id answers 404 before anything wrong with the body or the
query string answers 400, on every route with an id (issue 22, item 4)."""

from __future__ import annotations

import re

import pytest

from app.api import load_endpoints
from app.api.resources import NOT_CHECKED, URL_IDS, URL_NAMES
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow

VARIABLE = re.compile(r"<(?:(\w+):)?(\w+)>")
UNKNOWN = 987654321
ENDPOINTS = load_endpoints()


def _variables(rule: str) -> list[str]:
    return [name for _, name in VARIABLE.findall(rule)]


def _path(rule: str, ids: dict[str, int]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(2)
        return str(ids.get(name, UNKNOWN)) if name in URL_IDS else "no-such-key"

    return "/api/v1" + VARIABLE.sub(value, rule)


# Routes with an id that read a body or a query string: where a 400 could
# come before the 404.
REFUSABLE = [
    e
    for e in ENDPOINTS
    if any(name in URL_IDS or name in URL_NAMES for name in _variables(e.rule))
    and (e.body or e.query)
]


def _refused_request(api, endpoint, path):
    """A request the body or query schema refuses (unknown fields are
    refused by every input model)."""
    if endpoint.body is not None:
        return api._call(endpoint.method, path, json={"no_such_field": 1})
    return api._call(endpoint.method, f"{path}?no_such_field=1")


def test_every_url_variable_is_a_known_resource_or_declared_not_an_id():
    names = {name for e in ENDPOINTS for name in _variables(e.rule)}
    known = URL_IDS.keys() | URL_NAMES.keys() | NOT_CHECKED
    assert names <= known, names - known
    for e in ENDPOINTS:
        if set(_variables(e.rule)) & NOT_CHECKED:
            assert e.body is None and e.query is None, e.rule


def test_the_routes_checked_here_include_the_crm_and_graph_ones():
    rules = {(e.method, e.rule) for e in REFUSABLE}
    assert ("PATCH", "/automation/nodes/<int:node_pk>/") in rules
    assert ("PATCH", "/lists/<int:list_id>/") in rules
    assert ("PATCH", "/deals/<int:deal_id>/") in rules
    assert ("PATCH", "/contacts/<int:contact_id>/") in rules
    assert len(REFUSABLE) >= 25


@pytest.mark.parametrize("endpoint", REFUSABLE, ids=lambda e: f"{e.method} {e.rule}")
def test_an_unknown_id_is_404_before_a_refused_body_or_query(api, endpoint):
    response = _refused_request(api, endpoint, _path(endpoint.rule, {}))
    assert response.status_code == 404, response.json
    assert response.json["error"]["code"] == "not_found"


def test_the_node_of_the_report_and_another_firms_ids_are_404(api, acme, globex):
    response = api.patch(f"/api/v1/automation/nodes/{UNKNOWN}/", json={"node_type": 5})
    assert response.status_code == 404
    assert response.json["error"]["message"] == "node not found"
    theirs = make_workflow(globex, nodes=WELCOME_NODES, edges=WELCOME_EDGES)
    response = api.patch(f"/api/v1/automation/workflows/{theirs.id}/", json={"name": ""})
    assert response.status_code == 404
    their_contact = make_contact(globex)
    response = api.patch(f"/api/v1/contacts/{their_contact.id}/", json={"email": 5})
    assert response.status_code == 404
    # A batch of starts for an unknown workflow: 404, not the items' errors.
    response = api.post(f"/api/v1/automation/workflows/{UNKNOWN}/trigger/", json="nope")
    assert response.status_code == 404


def test_a_known_id_still_gets_its_400(api, acme):
    workflow = make_workflow(acme, nodes=WELCOME_NODES, edges=WELCOME_EDGES)
    contact = make_contact(acme)
    response = api.patch(f"/api/v1/automation/workflows/{workflow.id}/", json={"name": ""})
    assert response.status_code == 400
    response = api.patch(f"/api/v1/contacts/{contact.id}/", json={"no_such_field": 1})
    assert response.status_code == 400
    assert "no_such_field" in response.json["error"]["fields"]
    response = api.get(f"/api/v1/automation/workflows/{workflow.id}/analytics/?start=soon")
    assert response.status_code == 400
