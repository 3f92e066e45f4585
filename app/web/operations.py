"""Operations pages: GET /metrics (Prometheus) and the admin Health page
(docs/OPERATIONS.md)."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request

bp = Blueprint("operations", __name__)


@bp.get("/metrics")
def metrics():
    from app.automation.operations.metrics import exposition

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
