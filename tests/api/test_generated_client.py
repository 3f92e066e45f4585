"""An independent client: ``openapi-python-client`` generates a Python
package from /api/openapi.json (distinct schema names, so no response is
dropped; enums for node types, trigger types and execution statuses), and
that package builds, activates and runs a workflow against the app served
over real HTTP."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app.extensions import db

PACKAGE = "automation_api_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory, app):
    """The generated package, imported (made once for the module)."""
    root = tmp_path_factory.mktemp("generated")
    spec = root / "openapi.json"
    with app.test_client() as client:
        spec.write_text(client.get("/api/openapi.json").get_data(as_text=True))
    # The generator and the ruff it formats with sit beside this Python.
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    tool = shutil.which("openapi-python-client", path=env["PATH"])
    done = subprocess.run(
        [tool, "generate", "--path", str(spec), "--output-path", str(root / PACKAGE)]
        + ["--meta", "none"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


@pytest.fixture
def served(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _api(name: str):
    package, _, module = name.partition(":")
    return importlib.import_module(f"{PACKAGE}.api.{package}.{module}")


def test_the_schemas_have_distinct_titles_and_enums(client):
    document = client.get("/api/openapi.json").json
    schemas = document["components"]["schemas"]
    titles = [schema.get("title") for schema in schemas.values()]
    assert len(titles) == len(set(titles)), sorted(t for t in titles if titles.count(t) > 1)
    assert "add_tag" in schemas["NodeOut"]["properties"]["node_type"]["enum"]
    assert "manual" in schemas["TriggerOut"]["properties"]["trigger_type"]["enum"]
    assert "goal_reached" in schemas["ExecutionOut"]["properties"]["status"]["enum"]


def test_a_generated_client_runs_a_workflow(generated, served, acme, alice, token_for):
    from app.automation.engine.jobs import drain

    models = importlib.import_module(f"{PACKAGE}.models")
    raw = token_for(alice)["Authorization"].split(" ", 1)[1]
    api = generated.AuthenticatedClient(base_url=served, token=raw, raise_on_unexpected_status=True)

    def call(name: str, **kwargs):
        result = _api(name).sync(client=api, **kwargs)
        assert not isinstance(result, models.ErrorBody), result.to_dict()
        return result

    workflow = call(
        "workflows:workflows_create_workflow",
        body=models.WorkflowCreate.from_dict({"name": "Via client"}),
    )
    for key, node_type, configuration in (
        ("tag", "add_tag", {"tag": "generated"}),
        ("done", "goal", {}),
    ):
        node = call(
            "nodes:graph_create_node",
            body=models.NodeCreate.from_dict(
                {
                    "workflow": workflow.id,
                    "node_id": key,
                    "node_type": node_type,
                    "configuration": configuration,
                }
            ),
        )
        assert node.node_type == models.NodeOutNodeType(node_type)
        if key == "tag":
            first = node.id
    call(
        "edges:graph_create_edge",
        body=models.EdgeCreate.from_dict(
            {"workflow": workflow.id, "source_node": first, "target_node": node.id}
        ),
    )
    trigger = call(
        "triggers:graph_create_trigger",
        body=models.TriggerCreate.from_dict({"workflow": workflow.id, "trigger_type": "api"}),
    )
    assert trigger.trigger_type == models.TriggerOutTriggerType.API
    call("workflows:workflows_activate_workflow", workflow_id=workflow.id)
    contact = call(
        "contacts:contacts_create_contact",
        body=models.ContactCreate.from_dict({"email": "gen@example.com", "first_name": "Gen"}),
    )
    started = call(
        "workflows:workflows_trigger_workflow",
        workflow_id=workflow.id,
        body=models.TriggerRun.from_dict({"contact_id": contact.id}),
        idempotency_key="generated-1",
    )
    drain()
    db.session.remove()
    execution = call("executions:executions_get_execution", execution_id=started.id)
    assert execution.status.value == "goal_reached"
    assert execution.execution_path == ["tag", "done"]

    document = call("lifecycle:lifecycle_export", workflow_id=workflow.id)
    assert isinstance(document, models.DocumentOutput)
    assert json.loads(json.dumps(document.to_dict()))["workflow"]["name"] == "Via client"
