from __future__ import annotations

from tests.engine.helpers import active_workflow, chain, flow_states, run
from tests.factories import make_contact


def test_it_walks_a_chain_to_the_end(acme, alice):
    nodes, edges = chain(
        ("tag", "add_tag", {"tag": "vip"}),
        ("check", "condition", {"rules": [{"tag": "vip", "op": "has"}]}),
    )
    # A condition needs an outgoing edge (issue 22); this one's is never taken.
    nodes.append({"node_id": "never", "node_type": "add_tag", "configuration": {"tag": "x"}})
    edges.append(("check", "never", "no"))
    workflow = active_workflow(acme, alice, nodes, edges)
    contact = make_contact(acme)
    execution = run(workflow, contact)
    assert execution.status == "completed", execution.last_error
    assert execution.execution_path == ["tag", "check"]
    states = flow_states(acme.id, execution.id)
    assert [(s.node_id, s.action_status, s.branch) for s in states] == [
        ("tag", "success", None),
        ("check", "success", "yes"),
    ]
