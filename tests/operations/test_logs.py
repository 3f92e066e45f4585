"""LOG_FORMAT=json: one object a line, with firm_id, workflow_id,
execution_id and job where they apply (docs/CONTRACT.md "Operations")."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest

from app.automation.operations import logs
from app.queue import run_job
from app.tenancy import firm_context
from tests.conftest import USING_REDIS
from tests.engine.helpers import active_workflow, chain, run
from tests.factories import make_contact
from tests.faults.procs import ROOT


def noisy() -> None:
    """A job that logs (run by name, as the queue does)."""
    logging.getLogger("tests.noisy").warning("the noisy job ran")


@pytest.fixture
def json_lines(monkeypatch):
    """The root logger's records as parsed JSON objects."""
    monkeypatch.setenv("LOG_FORMAT", "json")
    stream = io.StringIO()
    handler = logs.handler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)

    def read() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    yield read
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_a_record_carries_the_firm_and_the_context(json_lines):
    with firm_context(7), logs.log_context(workflow_id=3, execution_id=41, job="engine"):
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("tests.logs").exception("step failed")
    logging.getLogger("tests.logs").info("outside")
    inside, outside = json_lines()
    assert inside["message"] == "step failed" and inside["level"] == "ERROR"
    assert (inside["firm_id"], inside["workflow_id"], inside["execution_id"]) == (7, 3, 41)
    assert inside["job"] == "engine"
    assert "ValueError: boom" in inside["exception"]
    assert outside["message"] == "outside"
    assert not {"firm_id", "workflow_id", "execution_id", "job"} & set(outside)


def test_a_step_that_raises_logs_its_execution(json_lines, acme, alice, monkeypatch):
    from app.automation.engine import walk as engine_walk

    def explode(step):
        raise RuntimeError("the executor broke")

    specs, edges = chain(("tag", "add_tag", {"tag": "x"}))
    workflow = active_workflow(acme, alice, specs, edges)
    monkeypatch.setattr(engine_walk, "executor_for", lambda node_type: explode)
    done = run(workflow, make_contact(acme))  # waits for a retry
    [entry] = [e for e in json_lines() if "raised" in e["message"]]
    assert (entry["firm_id"], entry["workflow_id"], entry["execution_id"]) == (
        acme.id,
        workflow.id,
        done.id,
    )


def test_a_job_logs_its_name(json_lines, app):
    run_job(app, noisy)
    [entry] = [e for e in json_lines() if e["message"] == "the noisy job ran"]
    assert entry["job"] == "tests.operations.test_logs.noisy"


def test_a_request_has_an_id_echoed_to_the_client(client):
    response = client.get("/healthz", headers={"X-Request-Id": "req-1234abcd"})
    assert response.headers["X-Request-Id"] == "req-1234abcd"
    generated = client.get("/healthz", headers={"X-Request-Id": "bad id!"})
    assert generated.headers["X-Request-Id"] != "bad id!"
    assert len(generated.headers["X-Request-Id"]) == 32


@pytest.mark.skipif(not USING_REDIS, reason="needs Redis and a real worker")
def test_a_worker_writes_json_lines(app, database_url, redis_url):
    from app.queue import enqueue

    enqueue(noisy)
    env = {
        **os.environ,
        "LOG_FORMAT": "json",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(
        [sys.executable, "worker.py", "--burst", "--no-scheduler"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    # Python's own warnings (a library's DeprecationWarning under load) go
    # to stderr without logging; every log record is a JSON object.
    text = done.stderr.decode().splitlines()
    lines = [json.loads(line) for line in text if line.startswith("{")]
    assert len(lines) >= 3, text
    [ran] = [line for line in lines if line["message"] == "the noisy job ran"]
    assert ran["job"] == "tests.operations.test_logs.noisy"
    assert ran["job_id"]
