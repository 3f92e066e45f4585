"""Login and logout pages, and a user's own account page (password,
"sign out everywhere")."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_login import login_user, logout_user

from app.auth import login_required_page
from app.extensions import db, limiter
from app.sessions import (
    authenticate,
    change_password,
    end_all_sessions,
    end_session,
    start_session,
)

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a login to another host."""
    if not target:
        return url_for("workflows.list_workflows")
    parts = urlsplit(target)
    # Browsers read "/\\evil.example" as "//evil.example" (another host).
    offsite = "\\" in target or any(ord(c) < 0x20 for c in target)
    if (
        offsite
        or parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
    ):
        return url_for("workflows.list_workflows")
    return target


NO_MATCH = "That e-mail and password do not match an account."
PASSWORD_MIN = 12


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def login():
    error = None
    email = ""
    firms: list = []
    if request.method == "POST":
        email = (request.form.get("email") or "").strip().lower()
        matches = authenticate(email, request.form.get("password") or "")
        chosen = request.form.get("firm") or ""
        if chosen:
            matches = [user for user in matches if str(user.firm_id) == chosen]
        staff = [user for user in matches if not user.is_portal]
        if not matches:
            error = NO_MATCH
        elif not staff:
            error = "Portal accounts cannot use the automation app."
        elif len(staff) > 1:
            # The same address and password in several firms: ask which.
            error = "This e-mail has an account in several firms. Choose one."
            firms = [user.firm for user in staff]
        else:
            user = staff[0]
            remember = bool(request.form.get("remember"))
            start_session(user, remember)
            login_user(user, remember=remember)
            db.session.commit()
            return redirect(_safe_next(request.args.get("next")))
    return render_template(
        "auth/login.html", error=error, email=email, firms=firms
    ), 200 if not error else 400


@bp.post("/logout")
def logout():
    if g.get("user") is not None and g.get("api_token") is None:
        end_session(g.user)
        db.session.commit()
    logout_user()
    flash("You are signed out.")
    return redirect(url_for("auth.login"))


@bp.get("/account")
@login_required_page
def account():
    return render_template("auth/account.html", errors={})


@bp.post("/account/password")
@login_required_page
@limiter.limit("20 per minute")
def account_password():
    new = request.form.get("new_password") or ""
    errors: dict[str, str] = {}
    if len(new) < PASSWORD_MIN:
        errors["new_password"] = f"Use at least {PASSWORD_MIN} characters."
    elif new != (request.form.get("confirm_password") or ""):
        errors["confirm_password"] = "The two new passwords differ."
    elif not change_password(g.user, request.form.get("current_password") or "", new):
        errors["current_password"] = "That is not your current password."
    if errors:
        return render_template("auth/account.html", errors=errors), 400
    db.session.commit()
    flash("Password changed. Every other browser signed in as you is signed out.")
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/sign-out-everywhere")
@login_required_page
def sign_out_everywhere():
    end_all_sessions(g.user)
    db.session.commit()
    logout_user()
    flash("You are signed out on every browser.")
    return redirect(url_for("auth.login"), code=303)
