"""Multiprocess metrics: work done in several processes (two "workers"
and two gunicorn workers) shows, summed, on any gunicorn worker's
GET /metrics (prometheus_client's multiprocess mode, docs/OPERATIONS.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.procs import ROOT, free_port, wait_until

WORK = textwrap.dedent(
    """
    import sys
    from app import create_app
    from app.automation.triggers.bus import emit

    app = create_app()
    with app.app_context():
        for _ in range(3):
            emit(int(sys.argv[1]), "ops_probe", None, {})
    """
)


def probes(text: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == "automation_events":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("type") == "ops_probe":
                    return sample.value
    return 0.0


def test_every_web_process_reports_the_work_of_every_process(
    tmp_path, database_url, redis_url, acme
):
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "DATABASE_URL": database_url,
        "METRICS_CACHE_SECONDS": "0",
        "INLINE_SCHEDULER": "false",
    }
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    os.makedirs(env["PROMETHEUS_MULTIPROC_DIR"])
    # The web processes start while the two "workers" do their work.
    work = [
        subprocess.Popen(
            [sys.executable, "-c", WORK, str(acme.id)], cwd=ROOT, env=env, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--workers", "2"]
        + ["--threads", "1", "--bind", f"127.0.0.1:{port}", "app:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for proc in work:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return httpx.get(base + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(up, timeout=60), (
            web.stderr.read1().decode() if web.poll() else "no answer"
        )
        for _ in range(8):
            with httpx.Client() as client:  # a new connection: any worker may answer
                response = client.get(base + "/metrics", timeout=10)
            assert response.status_code == 200
            assert probes(response.text) == 6
        # Each process has its own files (named by host and pid): the two
        # that did the work and both gunicorn workers.
        files = os.listdir(env["PROMETHEUS_MULTIPROC_DIR"])
        owners = {name.rsplit("_", 1)[-1] for name in files}
        assert len(owners) == 4, files
    finally:
        web.terminate()
        web.wait(timeout=30)
