"""Admin pages: the firm's users and API tokens, and the queue monitor.

A new token is shown once, in the response to the request that made it;
only its hash is stored (``ApiToken.issue``). Users and tokens are made by
``app/automation/accounts/users.py``, as the CLI makes them."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import joinedload

from app.auth import admin_required_page, forget_tokens
from app.automation.accounts import users
from app.automation.delivery import webhook_secret
from app.clock import now
from app.extensions import db
from app.models import ROLES, ApiToken, Firm, User, WorkflowExecution
from app.models.audit import record
from app.sessions import end_all_sessions
from app.web.formatting import firm_zone_name, zone_choices, zone_named
from app.web.pages import get_or_404, int_list
from app.web.queue_status import queue_report

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _page(status: int = 200, **extra):
    users = db.session.scalars(select(User).order_by(User.email)).all()
    tokens = db.session.scalars(
        select(ApiToken).options(joinedload(ApiToken.user)).order_by(ApiToken.id.desc())
    ).all()
    context = {
        "users": users,
        "tokens": tokens,
        "roles": ROLES,
        "user_form": {"email": "", "name": "", "role": "marketer"},
        "user_errors": {},
        "token_errors": {},
        "new_token": None,
        "zones": zone_choices(),
        "firm_zone": firm_zone_name(g.user.firm),
        "settings_error": None,
    }
    context.update(extra)
    return render_template("admin/index.html", **context), status


@bp.get("", strict_slashes=False)
@admin_required_page
def index():
    return _page()


@bp.post("/settings")
@admin_required_page
def save_firm_settings():
    name = (request.form.get("timezone") or "").strip()
    if zone_named(name) is None:
        return _page(
            422, settings_error=f"“{name[:64]}” is not a time zone; pick one from the list."
        )
    # An UPDATE, not a change to g.user.firm (a copy merged from the token
    # cache when the caller used a bearer token, see app/auth.py).
    firm = g.user.firm
    settings = {**(firm.settings or {}), "timezone": name}
    db.session.execute(update(Firm).where(Firm.id == firm.id).values(settings=settings))
    record("firm.settings_changed", firm, data={"timezone": name})
    db.session.commit()
    flash("Firm settings saved.")
    return redirect(url_for("admin.index"))


@bp.post("/users")
@admin_required_page
def create_user():
    form = {
        "email": (request.form.get("email") or "").strip(),
        "name": (request.form.get("name") or "").strip()[:200],
        "role": request.form.get("role") or "",
    }
    try:
        # The CLI's create-user too (app/automation/accounts/users.py).
        user = users.create_user(
            form["email"], request.form.get("password"), form["role"], form["name"]
        )
    except users.AccountError as exc:
        return _page(400, user_form=form, user_errors=exc.fields)
    flash(f"Added {user.email} ({user.role}).")
    return redirect(url_for("admin.index"))


@bp.post("/users/<int:user_id>/toggle")
@admin_required_page
def toggle_user(user_id: int):
    user = get_or_404(User, user_id)
    if user.id == g.user.id:
        flash("You cannot deactivate your own account.", "error")
        return redirect(url_for("admin.index"), code=303)
    user.is_active_user = not user.is_active_user
    if not user.is_active_user:
        end_all_sessions(user)  # signed out at once, wherever they are
    record("user.activated" if user.is_active_user else "user.deactivated", user)
    db.session.commit()
    forget_tokens()
    flash(f"{user.email} is now {'active' if user.is_active_user else 'deactivated'}.")
    return redirect(url_for("admin.index"))


@bp.post("/tokens")
@admin_required_page
def issue_token():
    name = " ".join((request.form.get("name") or "").split())[:200]
    ids = int_list([request.form.get("user_id", "")])
    owner = db.session.scalars(select(User).where(User.id == ids[0])).first() if ids else None
    try:
        _, raw = users.issue_token(owner, name)  # the CLI's create-token too
    except users.AccountError as exc:
        return _page(400, token_errors=exc.fields)
    # Rendered, not redirected: the raw token never goes into the session.
    return _page(201, new_token={"raw": raw, "name": name, "user": owner.email})


@bp.post("/tokens/<int:token_id>/revoke")
@admin_required_page
def revoke_token(token_id: int):
    token = get_or_404(ApiToken, token_id)
    if token.revoked_at is None:
        token.revoked_at = now()
        record("token.revoked", token, data={"name": token.name})
        db.session.commit()
        forget_tokens()  # other processes refuse it within AUTH_CACHE_SECONDS
    flash(f"Revoked the token “{token.name}”.")
    return redirect(url_for("admin.index"))


@bp.get("/webhooks")
@admin_required_page
def webhooks():
    return render_template("admin/webhooks.html", firm=db.session.get(Firm, g.user.firm_id))


@bp.post("/webhooks/rotate")
@admin_required_page
def rotate_webhook_secret():
    webhook_secret.rotate(db.session.get(Firm, g.user.firm_id))  # the API's rotate too
    flash("New signing secret. Deliveries carry a signature with the old one too for 24 hours.")
    return redirect(url_for("admin.webhooks"), code=303)


@bp.get("/queues")
@admin_required_page
def queues():
    moment = now()
    due = and_(WorkflowExecution.status == "waiting", WorkflowExecution.wake_at <= moment)
    ready = db.session.scalar(
        select(func.count())
        .select_from(WorkflowExecution)
        .where(or_(WorkflowExecution.status == "running", due))
    )
    waiting = db.session.scalar(
        select(func.count())
        .select_from(WorkflowExecution)
        .where(
            WorkflowExecution.status == "waiting",
            or_(WorkflowExecution.wake_at.is_(None), WorkflowExecution.wake_at > moment),
        )
    )
    return render_template(
        "admin/queues.html", report=queue_report(), ready=ready or 0, waiting=waiting or 0
    )
