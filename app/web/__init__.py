"""HTML blueprints."""

from __future__ import annotations

from flask import Flask, redirect, url_for

from app.web import formatting
from app.web.account import bp as account_bp
from app.web.admin import bp as admin_bp
from app.web.analytics import bp as analytics_bp
from app.web.audiences import bp as audiences_bp
from app.web.auth import bp as auth_bp
from app.web.builder import bp as builder_bp
from app.web.contact_import import bp as contact_import_bp
from app.web.contacts import bp as contacts_bp
from app.web.crm_pages import bp as crm_bp
from app.web.executions import bp as executions_bp
from app.web.icons import register_icons
from app.web.integrations import bp as integrations_bp
from app.web.lifecycle import bp as lifecycle_bp
from app.web.operations import bp as operations_bp
from app.web.outbox import bp as outbox_bp
from app.web.public_forms import bp as public_forms_bp
from app.web.public_site import bp as public_site_bp
from app.web.public_tracking import bp as public_tracking_bp
from app.web.sending_pages import bp as sending_bp
from app.web.suppressions import bp as suppressions_bp
from app.web.workflows import bp as workflows_bp


def register_web(app: Flask) -> None:
    register_icons(app)

    formatting.init_app(app)

    app.register_blueprint(auth_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(workflows_bp)

    # The marketer's pages: contacts, executions, dead letters, outbox.

    app.register_blueprint(contacts_bp)
    app.register_blueprint(contact_import_bp)
    app.register_blueprint(executions_bp)
    app.register_blueprint(outbox_bp)

    # Forms, lists and tags; admin (users, API tokens, queues).

    app.register_blueprint(crm_bp)
    app.register_blueprint(audiences_bp)
    app.register_blueprint(admin_bp)

    # Sending safely: the suppression list; topics, domains, wording.

    app.register_blueprint(suppressions_bp)
    app.register_blueprint(sending_bp)
    app.register_blueprint(integrations_bp)

    # Public, unauthenticated pages (triggers): forms and site tracking.

    app.register_blueprint(public_forms_bp)

    app.register_blueprint(public_site_bp)

    # Public e-mail tracking: pixel, click redirect, unsubscribe, provider callbacks.

    app.register_blueprint(public_tracking_bp)

    # Analytics dashboard (/automation/analytics/<id>).

    app.register_blueprint(analytics_bp)

    # The visual builder (/automation/builder/<id>).

    app.register_blueprint(builder_bp)

    # Lifecycle: versions + diff, publish/rollback, templates, import/export,
    # comments, approvals (/automation/<id>/versions, /automation/templates...).
    from app.web import lifecycle_collab  # noqa: F401  (its views join lifecycle's blueprint)

    app.register_blueprint(lifecycle_bp)

    # Operations: /metrics and the admin Health page.

    app.register_blueprint(operations_bp)

    @app.get("/")
    def index():
        return redirect(url_for("workflows.list_workflows"))
