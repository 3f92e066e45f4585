"""Every job the app runs is a function that RQ finds by the name it stores,
and the app enqueues functions, never names (a rename fails at import)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app import jobs, queue

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("job", jobs.ALL_JOBS, ids=queue.dotted)
def test_each_job_resolves_by_the_name_rq_stores(job):
    assert queue.resolve(queue.dotted(job)) is job


def test_kicks_and_periodic_jobs_are_registered_with_the_queue(app):
    assert queue.kick_job("engine") is jobs.KICK_JOBS["engine"]
    assert queue.kick_job("delivery") is jobs.KICK_JOBS["delivery"]
    assert queue.PERIODIC_JOBS == jobs.PERIODIC_JOBS
    assert all(callable(job["func"]) for job in queue.PERIODIC_JOBS)


def _enqueued(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name == "enqueue" and node.args:
                yield node.args[0]


def test_the_app_enqueues_only_listed_job_functions():
    known = {job.__name__ for job in jobs.ALL_JOBS}
    calls = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for arg in _enqueued(ast.parse(path.read_text())):
            where = f"{path.relative_to(ROOT)}:{arg.lineno}"
            assert not isinstance(arg, ast.Constant), f"{where}: a job by name"
            name = getattr(arg, "id", None) or getattr(arg, "attr", None)
            if name != "func":  # queue.py's own plumbing
                assert name in known, f"{where}: {name} is not in app/jobs.py"
                calls.append(name)
    assert calls, "no enqueue() call found: the scan is broken"


def test_a_job_by_name_is_refused():
    with pytest.raises(TypeError):
        queue.enqueue("app.automation.engine.jobs.run_engine_job")
    with pytest.raises(TypeError):
        queue.register_jobs({"engine": "app.automation.engine.jobs.run_engine_job"}, [])
