"""deploy/: the Grafana dashboard uses the metrics the app exports; the
compose file has the processes docs/OPERATIONS.md describes."""

from __future__ import annotations

import json
import re

from prometheus_client.parser import text_string_to_metric_families

from tests.delivery.conftest import configured
from tests.faults.procs import ROOT

CONTRACT = {
    "automation_executions_total",
    "automation_steps_total",
    "automation_step_seconds",
    "automation_queue_depth",
    "automation_waits_due",
    "automation_wake_lateness_seconds",
    "automation_outbox_messages",
    "automation_deliveries_total",
    "automation_events_total",
}


def test_the_dashboard_reads_every_contract_family_and_only_exported_ones(app, client):
    dashboard = json.loads((ROOT / "deploy/grafana/automation-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {
        re.sub(r"_bucket$", "", name) for e in exprs for name in re.findall(r"automation_\w+", e)
    }
    assert used >= CONTRACT
    with configured(app, METRICS_CACHE_SECONDS=0):
        text = client.get("/metrics").get_data(as_text=True)
    exported = set()
    for family in text_string_to_metric_families(text):
        # A labelled counter with no sample yet is listed by its name only.
        exported.add(family.name + ("_total" if family.type == "counter" else ""))
        exported.update(sample.name for sample in family.samples)
    assert used <= exported, used - exported


def test_the_compose_file_runs_the_documented_processes():
    import yaml

    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "pgbouncer", "web", "worker", "delivery", "migrate"} <= set(
        services
    )
    assert services["delivery"]["command"][-3:] == ["--queues", "delivery", "--no-scheduler"]
    assert "gunicorn" in (ROOT / "deploy/Dockerfile").read_text()
    ini = (ROOT / "deploy/pgbouncer/pgbouncer.ini").read_text()
    assert "pool_mode=transaction" in ini.replace(" ", "")
    environment = compose["x-app"]["environment"]
    assert environment["DB_PGBOUNCER"] == "true" and "pgbouncer:6432" in environment["DATABASE_URL"]
    procfile = (ROOT / "deploy/Procfile").read_text()
    assert "worker.py --queues delivery" in procfile


def test_behind_pgbouncer_psycopg_prepares_no_statements(monkeypatch):
    from app.config import from_environment

    monkeypatch.setenv("DB_PGBOUNCER", "true")
    options = from_environment({"SECRET_KEY": "x"})["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["connect_args"] == {"prepare_threshold": None}
    monkeypatch.delenv("DB_PGBOUNCER")
    assert "connect_args" not in from_environment({"SECRET_KEY": "x"})["SQLALCHEMY_ENGINE_OPTIONS"]
