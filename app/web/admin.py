"""Admin pages: the firm's users and API tokens, and the queue monitor.

A new token is shown once, in the response to the request that made it;
only its hash is stored (``ApiToken.issue``)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import joinedload

from app.auth import admin_required_page, forget_tokens
from app.clock import now
from app.extensions import db
from app.models import ROLES, ApiToken, Firm, User, WorkflowExecution
from app.models.audit import record
from app.sessions import end_all_sessions
from app.web.formatting import firm_zone_name, zone_choices, zone_named
from app.web.pages import get_or_404, int_list
from app.web.queue_status import queue_report

bp = Blueprint("admin", __name__, url_prefix="/admin")

PASSWORD_MIN = 12


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
    password = request.form.get("password") or ""
    errors: dict[str, str] = {}
    try:
        form["email"] = validate_email(form["email"], check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        errors["email"] = str(exc) if form["email"] else "Enter an e-mail address."
    else:
        # Unique within the firm only (tenancy scopes this query): whether the
        # address has an account in another firm is not this admin's to learn.
        if db.session.scalars(select(User).where(User.email == form["email"])).first():
            errors["email"] = "This e-mail address already has an account in your firm."
    if form["role"] not in ROLES:
        errors["role"] = "Choose admin, marketer or portal."
    if len(password) < PASSWORD_MIN:
        errors["password"] = f"Use at least {PASSWORD_MIN} characters."
    if errors:
        return _page(400, user_form=form, user_errors=errors)
    user = User(email=form["email"], name=form["name"], role=form["role"])
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    record("user.created", user, data={"email": user.email, "role": user.role})
    db.session.commit()
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
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Name the token after what uses it, e.g. “CRM sync”."
    if owner is None or not owner.is_active:
        errors["user_id"] = "Choose an active user of your firm."
    elif owner.is_portal:
        errors["user_id"] = "Portal users cannot use the API."
    if errors:
        return _page(400, token_errors=errors)
    token, raw = ApiToken.issue(owner, name=name)
    db.session.flush()
    record("token.issued", token, data={"name": name, "user": owner.email})
    db.session.commit()
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
    firm = db.session.get(Firm, g.user.firm_id)
    firm.rotate_webhook_secret()
    record("webhook_secret.rotated", firm)
    db.session.commit()
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
