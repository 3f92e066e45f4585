"""The builder page costs the same few queries whatever the size of the
workflow, and its canvas (written in Python, not Jinja) escapes what
marketers type and shows each step's problems."""

from __future__ import annotations

import html

from app.extensions import db
from tests.factories import make_workflow


def _chain(firm, steps: int, **node_fields):
    """``steps`` configured steps, each connected to the next, a trigger."""
    nodes = [
        {
            "node_id": f"tag_{i}",
            "node_type": "add_tag",
            "configuration": {"tag": f"t{i}"},
            **node_fields,
        }
        for i in range(steps)
    ]
    edges = [(f"tag_{i}", f"tag_{i + 1}") for i in range(steps - 1)]
    return make_workflow(
        firm, nodes=nodes, edges=edges, triggers=[{"trigger_type": "contact_created"}]
    )


def test_the_builder_page_takes_the_same_queries_for_3_and_60_steps(
    client, signed_in, alice, acme, count_queries
):
    signed_in(alice)
    small, large = _chain(acme, 3), _chain(acme, 60)
    client.get(f"/automation/builder/{small.id}")  # warm-up: first-use imports
    # Each page must load from the database, not from this session's memory.
    db.session.expunge_all()
    with count_queries() as few:
        assert client.get(f"/automation/builder/{small.id}").status_code == 200
    db.session.expunge_all()
    with count_queries() as many:
        page = client.get(f"/automation/builder/{large.id}").get_data(as_text=True)
    assert page.count('class="node"') == 60 and page.count('class="edge"') == 59
    assert many["n"] == few["n"], many["sql"]
    assert many["n"] <= 8, many["sql"]


def test_the_canvas_escapes_labels_and_shows_problems(client, signed_in, alice, acme):
    signed_in(alice)
    label = '<img src=x onerror="alert(1)"> & "quotes"'
    workflow = make_workflow(
        acme,
        nodes=[
            {"node_id": "first", "node_type": "add_tag", "configuration": {}, "label": label},
            {"node_id": "loose", "node_type": "add_tag", "configuration": {"tag": "x"}},
        ],
    )
    page = client.get(f"/automation/builder/{workflow.id}").get_data(as_text=True)
    canvas = page.split('<g id="nodes">', 1)[1].split('<path id="wire"', 1)[0]
    assert "<img" not in canvas and 'onerror="' not in canvas
    assert html.escape(label, quote=True)[:20] in canvas
    # Both steps lack an incoming connection, and "first" has no tag.
    first = canvas.split('id="node-first"', 1)[1].split('id="node-loose"', 1)[0]
    assert '<g class="node has-problems" id="node-first"' in canvas
    assert 'class="node-badge"' in first
    assert '— 2 problems"' in first and first.count("Problem: ") == 2
