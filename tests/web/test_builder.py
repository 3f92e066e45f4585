"""The builder page and its canvas edits (add, move, connect, delete)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.automation.nodes.registry import all_node_types
from app.extensions import db
from app.models import Workflow, WorkflowEdge, WorkflowNode
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_workflow
from tests.web.conftest import HX


@pytest.fixture
def welcome(acme):
    return make_workflow(
        acme,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "contact_created"}],
    )


def url(workflow, rest: str = "") -> str:
    return f"/automation/builder/{workflow.id}{rest}"


def write(client, token, path, body=None):
    return client.post(path, json=body or {}, headers={**HX, "X-CSRFToken": token})


def reload_workflow(workflow) -> Workflow:
    db.session.expire_all()
    with firm_context(workflow.firm_id):
        stmt = select(Workflow).where(Workflow.id == workflow.id)
        stmt = stmt.options(
            *(selectinload(getattr(Workflow, name)) for name in ("nodes", "edges", "triggers"))
        )
        found = db.session.scalars(stmt).one()
        for edge in found.edges:  # load the edge ends while the firm is set
            _ = (edge.source_node, edge.target_node)
        return found


def test_it_draws_the_canvas_and_the_palette(client, signed_in, alice, welcome):
    signed_in(alice)
    response = client.get(url(welcome))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for key in ("send_welcome_email", "wait_2_days", "goal"):
        assert f'id="node-{key}"' in page
    assert page.count('class="edge"') == 2
    for kind in all_node_types():
        assert f'data-node-type="{kind.key}"' in page
    # Nodes are reachable by Tab and named for screen readers.
    assert 'tabindex="0" role="button" aria-label="Send email: send_welcome_email, Send' in page
    assert "Ready to activate" in page


def test_the_page_loads_scripts_only_from_files(client, signed_in, alice, welcome):
    signed_in(alice)
    response = client.get(url(welcome))
    page = response.get_data(as_text=True)
    assert (
        "unsafe-inline"
        not in response.headers["Content-Security-Policy"].split("script-src")[1].split(";")[0]
    )
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert "canvas/main.js" in page and "builder.css" in page


def test_anonymous_visitors_are_sent_to_login(client, welcome):
    response = client.get(url(welcome))
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_portal_users_may_not_open_the_builder(client, paula, welcome, token_for):
    headers = token_for(paula)
    assert client.get(url(welcome), headers=headers).status_code == 403
    assert client.get(url(welcome, "/graph"), headers={**HX, **headers}).status_code == 403
    assert client.get(url(welcome, "/nodes/goal"), headers={**HX, **headers}).status_code == 403


def test_another_firms_workflow_is_not_found(client, signed_in, charlie, welcome):
    token = signed_in(charlie)
    assert client.get(url(welcome)).status_code == 404
    assert client.get(url(welcome, "/graph"), headers=HX).status_code == 404
    assert client.get(url(welcome, "/nodes/goal"), headers=HX).status_code == 404
    response = write(client, token, url(welcome, "/nodes"), {"node_type": "goal", "x": 1, "y": 1})
    assert response.status_code == 404
    assert write(client, token, url(welcome, "/nodes/goal/delete")).status_code == 404
    assert len(reload_workflow(welcome).nodes) == 3


def test_it_adds_a_node_where_it_was_dropped(client, signed_in, alice, acme):
    workflow = make_workflow(acme, name="Empty")
    token = signed_in(alice)
    first = write(
        client, token, url(workflow, "/nodes"), {"node_type": "send_email", "x": 320, "y": 96}
    )
    second = write(
        client, token, url(workflow, "/nodes"), {"node_type": "send_email", "x": 0, "y": 0}
    )
    assert first.status_code == 201 and second.status_code == 201
    assert first.json["node_id"] == "send_email" and first.json["history"]["undo"]
    assert second.json["node_id"] == "send_email_2"
    assert first.headers["HX-Trigger"] == "graph-changed"
    node = reload_workflow(workflow).node_by_key("send_email")
    assert (node.position_x, node.position_y) == (320, 96)
    assert node.label == "Send email"
    assert node.configuration["subject"] == "Hello {{ contact.first_name }}"


def test_it_refuses_an_unknown_node_type(client, signed_in, alice, welcome):
    token = signed_in(alice)
    response = write(
        client, token, url(welcome, "/nodes"), {"node_type": "teleport", "x": 1, "y": 1}
    )
    assert response.status_code == 422
    assert response.json["error"]["field"] == "node_type"
    response = write(
        client, token, url(welcome, "/nodes"), {"node_type": "goal", "x": "left", "y": 1}
    )
    assert response.status_code == 422
    assert response.json["error"]["field"] == "x"
    assert len(reload_workflow(welcome).nodes) == 3


def test_every_write_needs_the_csrf_token(client, signed_in, alice, welcome):
    signed_in(alice)
    response = client.post(url(welcome, "/nodes"), json={"node_type": "goal"}, headers=HX)
    assert response.status_code == 400
    response = client.post(url(welcome, "/nodes/goal/delete"), headers=HX)
    assert response.status_code == 400
    response = client.post(url(welcome, "/settings"), data={"name": "X"}, headers=HX)
    assert response.status_code == 400
    assert len(reload_workflow(welcome).nodes) == 3
    assert reload_workflow(welcome).name == "Welcome Campaign"


def test_a_plain_form_post_adds_a_node_and_returns_to_the_page(client, signed_in, alice, welcome):
    token = signed_in(alice)
    response = client.post(
        url(welcome, "/nodes"), data={"node_type": "add_tag", "csrf_token": token}
    )
    assert response.status_code == 302
    assert reload_workflow(welcome).node_by_key("add_tag") is not None


def test_it_saves_a_moved_node(client, signed_in, alice, welcome):
    token = signed_in(alice)
    response = write(client, token, url(welcome, "/nodes/goal/position"), {"x": 480.5, "y": 712})
    assert response.status_code == 200
    node = reload_workflow(welcome).node_by_key("goal")
    assert (node.position_x, node.position_y) == (480.5, 712)
    bad = write(client, token, url(welcome, "/nodes/goal/position"), {"x": "nan", "y": 1})
    assert bad.status_code == 422
    assert (
        write(client, token, url(welcome, "/nodes/nowhere/position"), {"x": 1, "y": 1}).status_code
        == 404
    )


def test_it_connects_a_free_output_to_a_step(client, signed_in, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=[
            {"node_id": "check", "node_type": "condition", "configuration": {"rules": []}},
            {"node_id": "vip", "node_type": "add_tag", "configuration": {"tag": "vip"}},
            {"node_id": "other", "node_type": "add_tag", "configuration": {"tag": "other"}},
        ],
    )
    token = signed_in(alice)
    yes = write(
        client, token, url(workflow, "/edges"), {"source": "check", "port": "yes", "target": "vip"}
    )
    assert yes.status_code == 201
    again = write(
        client,
        token,
        url(workflow, "/edges"),
        {"source": "check", "port": "yes", "target": "other"},
    )
    assert again.status_code == 422
    assert "already connected" in again.json["error"]["message"]
    wrong = write(
        client,
        token,
        url(workflow, "/edges"),
        {"source": "check", "port": "next", "target": "other"},
    )
    assert wrong.status_code == 422
    assert "no output 'next'" in wrong.json["error"]["message"]
    loop = write(
        client, token, url(workflow, "/edges"), {"source": "vip", "port": "next", "target": "vip"}
    )
    assert loop.status_code == 422
    missing = write(client, token, url(workflow, "/edges"), {"source": "vip", "target": "ghost"})
    assert missing.status_code == 422 and missing.json["error"]["field"] == "target"
    no = write(
        client, token, url(workflow, "/edges"), {"source": "check", "port": "no", "target": "other"}
    )
    assert no.status_code == 201
    edges = reload_workflow(workflow).edges
    assert sorted((e.condition_type, e.label) for e in edges) == [("no", "No"), ("yes", "Yes")]


def test_split_outputs_carry_their_variant(client, signed_in, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=[
            {
                "node_id": "ab",
                "node_type": "split",
                "configuration": {
                    "variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}]
                },
            },
            {"node_id": "a", "node_type": "add_tag", "configuration": {"tag": "a"}},
        ],
    )
    token = signed_in(alice)
    page = client.get(url(workflow)).get_data(as_text=True)
    assert 'data-port="variant:A"' in page and 'data-port="variant:B"' in page
    response = write(
        client, token, url(workflow, "/edges"), {"source": "ab", "port": "variant:B", "target": "a"}
    )
    assert response.status_code == 201
    edge = reload_workflow(workflow).edges[0]
    assert (edge.condition_type, edge.condition_config) == ("variant", {"variant": "B"})


def test_deleting_a_node_removes_its_connections(client, signed_in, alice, welcome):
    token = signed_in(alice)
    response = write(client, token, url(welcome, "/nodes/wait_2_days/delete"))
    assert response.status_code == 200
    workflow = reload_workflow(welcome)
    assert [n.node_id for n in workflow.nodes] == ["send_welcome_email", "goal"]
    assert workflow.edges == []
    with firm_context(welcome.firm_id):
        assert db.session.scalars(select(WorkflowEdge)).all() == []


def test_it_deletes_a_connection(client, signed_in, alice, welcome):
    token = signed_in(alice)
    edge_id = reload_workflow(welcome).edges[0].id
    assert write(client, token, url(welcome, f"/edges/{edge_id}/delete")).status_code == 200
    assert len(reload_workflow(welcome).edges) == 1
    assert write(client, token, url(welcome, f"/edges/{edge_id}/delete")).status_code == 404


def test_the_graph_fragment_is_a_page_on_reload(client, signed_in, alice, welcome):
    signed_in(alice)
    fragment = client.get(url(welcome, "/graph"), headers=HX)
    assert fragment.status_code == 200
    body = fragment.get_data(as_text=True)
    assert body.lstrip().startswith("{#") is False and '<g id="nodes">' in body
    assert "<html" not in body
    full = client.get(url(welcome, "/graph"))
    assert full.status_code == 302 and full.headers["Location"].endswith(url(welcome))
    assert client.get(url(welcome, "/problems")).status_code == 302


def test_problems_show_as_badges_and_in_the_panel(client, signed_in, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=[
            {"node_id": "mail", "node_type": "send_email", "configuration": {"subject": ""}},
            {"node_id": "lonely", "node_type": "add_tag", "configuration": {"tag": "x"}},
        ],
    )
    signed_in(alice)
    page = client.get(url(workflow)).get_data(as_text=True)
    assert 'class="node has-problems" id="node-mail"' in page
    assert 'data-select-node="mail"' in page
    assert "add an active trigger so contacts can enter" in page
    problems = client.get(url(workflow, "/problems"), headers=HX).get_data(as_text=True)
    assert "subject: required" in problems


def test_a_node_in_the_url_opens_its_inspector(client, signed_in, alice, welcome):
    signed_in(alice)
    page = client.get(url(welcome, "?node=wait_2_days")).get_data(as_text=True)
    assert 'data-selected="wait_2_days"' in page
    assert 'id="inspector" data-node-id="wait_2_days"' in page


def test_labels_are_escaped_on_the_canvas(client, signed_in, alice, acme):
    workflow = make_workflow(
        acme,
        name='<img src=x onerror="alert(1)">',
        nodes=[
            {
                "node_id": "a",
                "node_type": "add_tag",
                "label": "<script>alert(1)</script>",
                "configuration": {"tag": "x"},
            }
        ],
    )
    signed_in(alice)
    page = client.get(url(workflow)).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<img src=x onerror="alert(1)">' not in page
    assert 'id="graph" data-hx-disable' in page


def test_it_remembers_pan_and_zoom(client, signed_in, alice, welcome):
    token = signed_in(alice)
    response = write(client, token, url(welcome, "/viewport"), {"x": -120, "y": 40, "k": 9})
    assert response.json == {"x": -120, "y": 40, "k": 3.0}
    assert reload_workflow(welcome).canvas_data["viewport"] == {"x": -120, "y": 40, "k": 3.0}
    page = client.get(url(welcome)).get_data(as_text=True)
    assert 'data-viewport="{&#34;k&#34;: 3.0, &#34;x&#34;: -120' in page


def test_nodes_only_count_for_their_own_workflow(client, signed_in, alice, acme, welcome):
    other = make_workflow(acme, name="Other", nodes=[{"node_id": "goal", "node_type": "goal"}])
    token = signed_in(alice)
    write(client, token, url(other, "/nodes/goal/delete"))
    assert reload_workflow(welcome).node_by_key("goal") is not None
    with firm_context(acme.id):
        assert (
            db.session.scalars(
                select(WorkflowNode).where(WorkflowNode.workflow_id == other.id)
            ).all()
            == []
        )


def test_a_step_id_taken_meanwhile_is_a_conflict_not_a_crash(
    client, signed_in, alice, welcome, monkeypatch
):
    import app.automation.graph.editing as graph

    # As if another tab added "goal" between our read and our write.
    monkeypatch.setattr(graph, "unique_node_id", lambda workflow, base: "goal")
    token = signed_in(alice)
    response = write(client, token, url(welcome, "/nodes"), {"node_type": "goal", "x": 1, "y": 1})
    assert response.status_code == 409
    assert "try again" in response.json["error"]["message"]
    assert len(reload_workflow(welcome).nodes) == 3


def test_an_unconnected_output_of_a_branching_step_says_it_ends_here(
    client, signed_in, alice, acme
):
    nodes = [
        {"node_id": "check", "node_type": "condition", "configuration": {"rules": []}},
        {"node_id": "vip", "node_type": "add_tag", "configuration": {"tag": "vip"}},
        {"node_id": "lonely", "node_type": "condition", "configuration": {"rules": []}},
    ]
    workflow = make_workflow(acme, nodes=nodes, edges=[("check", "vip", "yes")])
    signed_in(alice)
    page = client.get(url(workflow)).get_data(as_text=True)
    check = page[page.index('id="node-check"') : page.index('id="node-vip"')]
    assert '<g class="port-out" data-port="yes"' in check
    assert '<g class="port-out port-ends" data-ends="true" data-port="no"' in check
    assert "Yes, No ends here" in check
    assert "ends here</text>" in check
    lonely = page[page.index('id="node-lonely"') :]
    lonely = lonely[: lonely.index("</g>\n")]
    assert lonely.count('data-ends="true"') == 2
    assert "this step has no way out" in lonely
