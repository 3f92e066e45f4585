"""Site tracking: the snippet ``/t/track.js`` and its beacon ``POST /t/v``.

The snippet runs on the firm's own site (another origin), so the beacon
answers CORS for the calling origin with credentials (the ``atv`` cookie
must travel); it needs no CSRF token (no session, nothing to forge: a
page view only records a page view) and is rate-limited per IP.
"""

from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify, request, send_from_directory

from app.automation.triggers.site import BadBeacon, parse_beacon, record_visit
from app.automation.triggers.visitor import (
    COOKIE,
    firm_id_from_public_key,
    read_visitor_cookie,
)
from app.extensions import csrf, limiter

bp = Blueprint("public_site", __name__)
csrf.exempt(bp)


@bp.get("/t/track.js")
def track_js():
    response = send_from_directory(
        current_app.static_folder, "track.js", mimetype="application/javascript", max_age=3600
    )
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def _cors(response):
    origin = request.headers.get("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "86400"
    response.headers.add("Vary", "Origin")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/t/v", methods=["OPTIONS"])
def beacon_preflight():
    return _cors(current_app.response_class(status=204))


@bp.post("/t/v")
@limiter.limit(lambda: current_app.config.get("SITE_BEACON_RATE_LIMIT", "120/minute"))
def beacon():
    body = _body()
    if body is None:
        return _error(400, "bad_request", "the body must be a JSON object", {})
    firm_id = firm_id_from_public_key(str(body.get("firm") or ""))
    if firm_id is None:
        return _error(404, "not_found", "unknown site", {"firm": ["unknown"]})
    try:
        parsed = parse_beacon(body)
    except BadBeacon as exc:
        return _error(400, "validation_error", exc.message, {exc.field: [exc.message]})
    contact_id = None
    ref = read_visitor_cookie(request.cookies.get(COOKIE))
    if ref is not None and ref[0] == firm_id:
        contact_id = ref[1]
    record_visit(firm_id, parsed, contact_id, request.user_agent.string or "")
    return _cors(current_app.response_class(status=204))


def _body() -> dict | None:
    """sendBeacon posts JSON as text/plain; accept that, JSON and form bodies."""
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.form.to_dict()
    try:
        data = json.loads(request.get_data(cache=False, as_text=True) or "null")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _error(status: int, code: str, message: str, fields: dict):
    response = jsonify({"error": {"code": code, "message": message, "fields": fields}})
    response.status_code = status
    return _cors(response)
