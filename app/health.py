"""GET /healthz: can we reach the database and the queue?"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import text

from app.extensions import db


def health_report() -> tuple[dict, int]:
    report = {"status": "ok", "database": "ok", "queue": "inline"}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        db.session.rollback()
        report["database"] = "error"
        report["status"] = "error"
    if current_app.config.get("REDIS_URL"):
        try:
            from app.queue import redis_connection

            redis_connection().ping()
            report["queue"] = "ok"
        except Exception:
            report["queue"] = "error"
            report["status"] = "error"
    return report, 200 if report["status"] == "ok" else 503
