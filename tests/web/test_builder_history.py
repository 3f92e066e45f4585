"""Canvas edits on the server: undo and redo of every kind of edit, steps
inserted after a step or on a connection, copy and paste (also into another
workflow), several steps moved or deleted at once. Assertions read the
database after each request."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import WorkflowEdit
from app.tenancy import firm_context
from tests.factories import make_workflow
from tests.web.test_builder import reload_workflow, url, write


@pytest.fixture
def chain(acme):
    """a -> b -> c, each an add_tag step with its own tag."""
    return make_workflow(
        acme,
        nodes=[
            {"node_id": key, "node_type": "add_tag", "configuration": {"tag": key}}
            for key in ("a", "b", "c")
        ],
        edges=[("a", "b"), ("b", "c")],
    )


def graph(workflow) -> tuple[dict, set]:
    row = reload_workflow(workflow)
    nodes = {n.node_id: (n.label, n.configuration, n.position_x, n.position_y) for n in row.nodes}
    edges = {
        (e.source_node.node_id, e.condition_type or "next", e.target_node.node_id)
        for e in row.edges
    }
    return nodes, edges


def test_undo_of_a_delete_brings_the_step_back_with_its_settings_and_connections(
    client, signed_in, alice, chain
):
    token = signed_in(alice)
    before = graph(chain)
    deleted = write(client, token, url(chain, "/nodes/b/delete"))
    assert deleted.status_code == 200 and deleted.json["history"]["undo"] == "Delete b"
    nodes, edges = graph(chain)
    assert "b" not in nodes and edges == set()

    undone = write(client, token, url(chain, "/undo"))
    assert undone.status_code == 200 and undone.json["label"] == "Delete b"
    assert undone.json["history"] == {"undo": None, "redo": "Delete b"}
    assert graph(chain) == before

    redone = write(client, token, url(chain, "/redo"))
    assert redone.status_code == 200
    assert "b" not in graph(chain)[0]
    assert write(client, token, url(chain, "/redo")).status_code == 409


def test_every_edit_can_be_undone_in_turn(client, signed_in, alice, chain):
    token = signed_in(alice)
    start = graph(chain)
    write(client, token, url(chain, "/nodes/a/position"), {"x": 500, "y": 40})
    edge = next(e for e in reload_workflow(chain).edges if e.source_node.node_id == "b")
    write(client, token, url(chain, f"/edges/{edge.id}/delete"))
    write(client, token, url(chain, "/edges"), {"source": "c", "target": "a"})
    write(client, token, url(chain, "/nodes"), {"node_type": "goal", "x": 0, "y": 0})
    response = client.post(
        url(chain, "/nodes/c"),
        data={
            "csrf_token": token,
            "_action": "save",
            "label": "Tag C",
            "node_id": "c",
            "tag": "vip",
        },
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    label, config = graph(chain)[0]["c"][:2]
    assert label == "Tag C" and config["tag"] == "vip"
    labels = [write(client, token, url(chain, "/undo")).json["label"] for _ in range(5)]
    assert labels == ["Change Tag C", "Add Goal", "Connect c to a", "Disconnect b from c", "Move a"]
    assert graph(chain) == start
    assert write(client, token, url(chain, "/undo")).status_code == 409


def test_a_new_edit_ends_what_could_be_redone(client, signed_in, alice, chain):
    token = signed_in(alice)
    write(client, token, url(chain, "/nodes/a/position"), {"x": 1, "y": 1})
    write(client, token, url(chain, "/undo"))
    write(client, token, url(chain, "/nodes/b/position"), {"x": 2, "y": 2})
    assert write(client, token, url(chain, "/redo")).status_code == 409
    with firm_context(chain.firm_id):
        kept = db.session.query(WorkflowEdit).filter_by(workflow_id=chain.id).all()
    assert [(edit.label, edit.undone) for edit in kept] == [("Move b", False)]


def test_a_step_added_after_another_is_connected_and_one_on_a_connection_is_spliced_in(
    client, signed_in, alice, chain
):
    token = signed_in(alice)
    after = write(client, token, url(chain, "/nodes"), {"node_type": "wait_time", "after": "c"})
    assert after.status_code == 201 and after.json["node_id"] == "wait_time"
    nodes, edges = graph(chain)
    assert ("c", "next", "wait_time") in edges
    assert nodes["wait_time"][3] > nodes["c"][3]  # below it

    edge = next(e for e in reload_workflow(chain).edges if e.source_node.node_id == "a")
    spliced = write(client, token, url(chain, "/nodes"), {"node_type": "goal", "edge": edge.id})
    assert spliced.status_code == 201
    nodes, edges = graph(chain)
    assert {("a", "next", "goal"), ("goal", "next", "b")} <= edges
    assert ("a", "next", "b") not in edges
    # The steps from b on moved down to make room, in order.
    assert nodes["a"][3] < nodes["goal"][3] < nodes["b"][3] < nodes["c"][3]

    # "After a" again: a's only output is taken, so the step goes in between.
    write(client, token, url(chain, "/nodes"), {"node_type": "add_tag", "after": "a"})
    edges = graph(chain)[1]
    assert {("a", "next", "add_tag"), ("add_tag", "next", "goal")} <= edges
    # One undo takes the whole insert back, connections included.
    write(client, token, url(chain, "/undo"))
    edges = graph(chain)[1]
    assert ("a", "next", "goal") in edges and "add_tag" not in graph(chain)[0]


def test_insert_refuses_what_does_not_exist(client, signed_in, alice, chain):
    token = signed_in(alice)
    missing = write(client, token, url(chain, "/nodes"), {"node_type": "goal", "after": "zz"})
    assert missing.status_code == 422 and missing.json["error"]["field"] == "after"
    gone = write(client, token, url(chain, "/nodes"), {"node_type": "goal", "edge": 999999})
    assert gone.status_code == 422 and gone.json["error"]["field"] == "edge"
    assert set(graph(chain)[0]) == {"a", "b", "c"}


def test_copied_steps_paste_into_another_workflow_with_their_connections(
    client, signed_in, alice, acme, chain
):
    token = signed_in(alice)
    other = make_workflow(acme, name="Other", nodes=[{"node_id": "a", "node_type": "goal"}])
    copied = write(client, token, url(chain, "/copy"), {"nodes": ["a", "b"]})
    assert copied.status_code == 200
    document = copied.json
    assert document["format"] == "automation-steps" and document["edges"] == [
        {"source": "a", "port": "next", "target": "b"}
    ]
    pasted = write(client, token, url(other, "/paste"), {"document": document, "x": 600, "y": 80})
    assert pasted.status_code == 201 and pasted.json["node_ids"] == ["a_2", "b"]
    nodes, edges = graph(other)
    assert edges == {("a_2", "next", "b")}
    assert nodes["a_2"][1] == {"tag": "a"} and (nodes["a_2"][2], nodes["a_2"][3]) == (600, 80)
    assert graph(chain)[1] == {("a", "next", "b"), ("b", "next", "c")}  # the source is untouched
    write(client, token, url(other, "/undo"))
    assert set(graph(other)[0]) == {"a"}


@pytest.mark.parametrize(
    "document",
    [
        None,
        {"format": "other", "nodes": []},
        {"format": "automation-steps", "nodes": [{"node_type": "teleport"}]},
        {"format": "automation-steps", "nodes": [{"node_type": "goal", "configuration": []}]},
        {"format": "automation-steps", "nodes": [{"node_type": "goal", "x": "left"}]},
    ],
)
def test_paste_refuses_a_document_that_is_not_copied_steps(
    client, signed_in, alice, chain, document
):
    token = signed_in(alice)
    response = write(client, token, url(chain, "/paste"), {"document": document})
    assert response.status_code == 422 and response.json["error"]["field"]
    assert set(graph(chain)[0]) == {"a", "b", "c"}


def test_several_steps_move_or_go_at_once_as_one_undo_step(client, signed_in, alice, chain):
    token = signed_in(alice)
    start = graph(chain)
    moved = write(
        client,
        token,
        url(chain, "/positions"),
        {"positions": {"a": [10, 20], "c": [30, 40]}, "reason": "tidy"},
    )
    assert moved.status_code == 200 and moved.json["history"]["undo"] == "Tidy"
    nodes = graph(chain)[0]
    assert nodes["a"][2:] == (10, 20) and nodes["c"][2:] == (30, 40)
    bad = write(client, token, url(chain, "/positions"), {"positions": {"a": [1]}})
    assert bad.status_code == 422 and graph(chain)[0]["a"][2:] == (10, 20)

    deleted = write(client, token, url(chain, "/nodes/delete"), {"nodes": ["a", "b"]})
    assert deleted.status_code == 200 and deleted.json["history"]["undo"] == "Delete 2 steps"
    assert set(graph(chain)[0]) == {"c"}
    write(client, token, url(chain, "/undo"))
    write(client, token, url(chain, "/undo"))
    assert graph(chain) == start


def test_another_firms_workflow_has_no_history_to_undo(client, signed_in, alice, chain, charlie):
    token = signed_in(alice)
    write(client, token, url(chain, "/nodes/a/position"), {"x": 1, "y": 1})
    client.post("/logout", headers={"X-CSRFToken": token})
    other = signed_in(charlie)
    assert write(client, other, url(chain, "/undo")).status_code == 404
    assert write(client, other, url(chain, "/copy"), {"nodes": ["a"]}).status_code == 404


def _triggers(workflow) -> dict:
    return {
        t.id: (t.trigger_type, t.configuration, t.is_active)
        for t in reload_workflow(workflow).triggers
    }


def _form(client, token, path, data=None):
    from tests.web.conftest import HX

    return client.post(path, data={"csrf_token": token, **(data or {})}, headers=HX)


def test_trigger_edits_are_undone_and_redone(client, signed_in, alice, acme):
    """Add, change, disable and remove a trigger in the panel; each is one
    undo, and a removed trigger comes back with its configuration and id."""
    workflow = make_workflow(acme, triggers=[{"trigger_type": "contact_created"}])
    (first,) = _triggers(workflow)
    token = signed_in(alice)
    added = _form(
        client,
        token,
        url(workflow, "/triggers"),
        {"trigger_type": "contact_tag_added", "tag": "vip"},
    )
    assert added.status_code == 200, added.get_data(as_text=True)
    (second,) = set(_triggers(workflow)) - {first}
    _form(client, token, url(workflow, f"/triggers/{second}"), {"tag": "gold"})
    _form(client, token, url(workflow, f"/triggers/{first}/toggle"))
    _form(client, token, url(workflow, f"/triggers/{first}/delete"))
    assert set(_triggers(workflow)) == {second}
    assert _triggers(workflow)[second][1]["tag"] == "gold"

    undone = write(client, token, url(workflow, "/undo"))
    assert undone.json["label"] == "Remove trigger Contact created"
    assert _triggers(workflow)[first] == ("contact_created", {}, False)
    assert write(client, token, url(workflow, "/undo")).json["label"] == (
        "Disable trigger Contact created"
    )
    assert _triggers(workflow)[first][2] is True
    assert write(client, token, url(workflow, "/undo")).json["label"] == "Change trigger Tag added"
    assert _triggers(workflow)[second][1]["tag"] == "vip"
    assert write(client, token, url(workflow, "/undo")).json["label"] == "Add trigger Tag added"
    assert set(_triggers(workflow)) == {first}
    redone = write(client, token, url(workflow, "/redo"))
    assert redone.json["history"]["redo"] == "Change trigger Tag added"
    assert _triggers(workflow)[second] == ("contact_tag_added", {"tag": "vip"}, True)


def test_settings_changes_are_undone(client, signed_in, alice, acme):
    workflow = make_workflow(acme, name="Welcome", allow_reentry=False)
    token = signed_in(alice)
    saved = _form(
        client,
        token,
        url(workflow, "/settings"),
        {"name": "Welcome v2", "description": "New", "allow_reentry": "on"},
    )
    assert saved.status_code == 200 and saved.headers["HX-Trigger"] == "graph-changed"
    row = reload_workflow(workflow)
    assert (row.name, row.allow_reentry) == ("Welcome v2", True)
    undone = write(client, token, url(workflow, "/undo"))
    assert undone.json["label"] == "Change workflow settings"
    row = reload_workflow(workflow)
    assert (row.name, row.description, row.allow_reentry) == ("Welcome", "", False)
    write(client, token, url(workflow, "/redo"))
    assert reload_workflow(workflow).name == "Welcome v2"
