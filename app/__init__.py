"""The application factory."""

from __future__ import annotations

import os

from flask import Flask, Request, g, jsonify
from werkzeug.exceptions import BadRequest
from werkzeug.middleware.proxy_fix import ProxyFix

from app import config as app_config
from app.extensions import csrf, db, limiter, login_manager, migrate


class _Request(Request):
    """JSON nested past Python's recursion limit (``[[[[...`` 10,000 deep
    fits in a few kilobytes) raises RecursionError, not ValueError: treat
    it as malformed JSON (400, or None when silent) instead of a 500."""

    def get_json(self, force=False, silent=False, cache=True):
        try:
            return super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            if silent:
                return None
            raise BadRequest("the JSON body is nested too deeply") from None


def create_app(overrides: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        template_folder=str(app_config.ROOT / "templates"),
        static_folder=str(app_config.ROOT / "static"),
        instance_path=str(app_config.ROOT / "instance"),
    )
    app.request_class = _Request
    app.config.update(app_config.from_environment(overrides))
    if os.environ.get("LOG_FORMAT") and not app.testing:
        # JSON logs (docs/OPERATIONS.md); without LOG_FORMAT gunicorn's and
        # Flask's own logging stays as it is.
        from app.automation.operations.logs import configure_logging

        configure_logging()
    app.wsgi_app = _HardenCookies(app.wsgi_app)
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops > 0:
        # Only the last `hops` X-Forwarded-* entries are believed: the ones
        # our own proxies appended. With none, a client cannot spoof them.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # SQLite: one file, shared by the web threads and the inline worker.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    if not app.config.get("RATELIMIT_STORAGE_URI"):
        # Limits are shared by every web process through Redis when there is one.
        app.config["RATELIMIT_STORAGE_URI"] = app.config.get("REDIS_URL") or "memory://"

    db.init_app(app)
    migrate.init_app(app, db, directory=str(app_config.ROOT / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    csrf.init_app(app)
    limiter.init_app(app)

    from app import jobs, models  # noqa: F401  (register every job and table)
    from app.automation.triggers import crm_events  # noqa: F401  (CRM changes fire triggers)
    from app.db_setup import configure_database

    configure_database(app)
    _register_request_hooks(app)
    from app.queue import init_app as init_queue

    init_queue(app)  # the in-process scheduler, when there is no Redis
    _register_blueprints(app)

    from app.commands import register_commands

    register_commands(app)
    return app


def _register_request_hooks(app: Flask) -> None:
    from app.auth import authenticate_request, forget_request

    app.before_request(_bind_request_log)
    app.before_request(authenticate_request)

    @app.teardown_request
    def _forget(exc=None):
        forget_request()
        token = g.pop("log_token", None)
        if token is not None:
            from app.automation.operations.logs import unbind

            unbind(token)

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if g.get("request_id"):
            response.headers.setdefault("X-Request-Id", g.request_id)
        return response

    @app.context_processor
    def _inject_user():
        return {"user": g.get("user")}


def _bind_request_log() -> None:
    """Every record logged while serving a request carries its id (the
    proxy's X-Request-Id when it sends a sane one) and, once the caller
    is known, the firm (docs/OPERATIONS.md)."""
    import re
    import uuid

    from flask import request

    from app.automation.operations.logs import bind

    given = request.headers.get("X-Request-Id", "")
    g.request_id = given if re.fullmatch(r"[A-Za-z0-9._-]{8,64}", given) else uuid.uuid4().hex
    g.log_token = bind(request_id=g.request_id)


class _HardenCookies:
    """Every cookie the app sets, whoever sets it (Flask's session and
    Flask-Login's remember cookie are written after any after_request hook;
    the visitor cookie), leaves with a SameSite attribute and, when the
    request came over https (as ProxyFix reads it), Secure."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        secure = environ.get("wsgi.url_scheme") == "https"

        def start(status, headers, exc_info=None):
            headers = [
                (name, _harden(value, secure) if name.lower() == "set-cookie" else value)
                for name, value in headers
            ]
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)


def _harden(cookie: str, secure: bool) -> str:
    attributes = {part.strip().split("=", 1)[0].lower() for part in cookie.split(";")[1:]}
    if "samesite" not in attributes:
        cookie += "; SameSite=Lax"
    if secure and "secure" not in attributes:
        cookie += "; Secure"
    return cookie


def _register_blueprints(app: Flask) -> None:
    from app.web import register_web

    register_web(app)

    from app.api import register_api

    register_api(app)

    @app.get("/healthz")
    def healthz():
        from app.health import health_report

        report, status = health_report()
        return jsonify(report), status
