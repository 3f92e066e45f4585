"""What rq's own tools and the admin queue page can see: finished jobs stay
in RQ's finished registry for a while (not result_ttl=0, which left it
empty forever), and the periodic jobs, which run in the workers'
scheduler threads rather than as RQ jobs, are named in a worker's log and
listed on the queue page with their last run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq import SimpleWorker
from rq.registry import FinishedJobRegistry

from app import queue
from app.automation.engine.sweeper import process_waiting_executions
from app.extensions import db

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]


def test_a_finished_job_is_in_rqs_finished_registry(app):
    connection = queue.redis_connection()
    job = queue.enqueue(process_waiting_executions, queue="default")
    worker = SimpleWorker([queue.rq_queue("default")], connection=connection)
    with app.app_context():
        worker.work(burst=True)
    registry = FinishedJobRegistry(queue=queue.rq_queue("default"))
    assert job.id in registry.get_job_ids()
    ttl = connection.ttl(job.key)
    assert 0 < ttl <= queue.JOB_RESULT_TTL


def test_a_worker_names_its_periodic_jobs_and_the_queue_page_shows_their_runs(
    app, database_url, redis_url, client, auth, alice, tmp_path
):
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "INFO",
        "SWEEP_INTERVAL_SECONDS": "0.5",
    }
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py"), "--name", "visible-worker"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        connection = queue.redis_connection()
        key = queue.periodic_runs_key(app)
        names = {job["name"] for job in queue.PERIODIC_JOBS}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if {name.decode() for name in connection.hkeys(key)} >= names:
                break
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.2)
        text = log_path.read_text()
        for job in queue.PERIODIC_JOBS:
            assert f"periodic job {job['name']}: {queue.dotted(job['func'])}" in text, text
        auth.login(alice)
        page = client.get("/admin/queues").get_data(as_text=True)
        db.session.rollback()
        for job in queue.PERIODIC_JOBS:
            assert f"<code>{queue.dotted(job['func'])}</code>" in page
        assert page.count("<code>visible-worker</code>") >= len(names)
    finally:
        proc.terminate()  # RQ's warm shutdown; slow on a loaded machine
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
