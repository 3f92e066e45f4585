"""Operations pages: GET /metrics (Prometheus) and the admin Health page
(docs/OPERATIONS.md)."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, render_template, request

from app.auth import admin_required_page
from app.automation.operations.metrics import exposition
from app.automation.operations.monitor import CHECKS, check

bp = Blueprint("operations", __name__)


@bp.get("/metrics")
def metrics():
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            return Response(
                "metrics need the METRICS_TOKEN as a bearer token\n",
                status=401,
                mimetype="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    body, content_type = exposition(current_app._get_current_object())
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})


CHECK_TITLES = {
    "late_wakes": "Late waits",
    "lease_expiries": "Executions losing their worker",
    "dead_letters": "Failures piling up",
    "delivery_backlog": "Delivery backlog",
    "sending_paused": "Sending paused",
    "workers_missing": "Workers",
}


@bp.get("/admin/health")
@admin_required_page
def health():
    """The monitor's checks, now, for this firm (and the deployment)."""
    report = check(all_firms=False)
    return render_template("admin/health.html", report=report, checks=CHECKS, titles=CHECK_TITLES)
