"""Login and logout pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_user, logout_user

from app.extensions import db, limiter
from app.models import User

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


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def login():
    error = None
    email = ""
    if request.method == "POST":
        email = (request.form.get("email") or "").strip().lower()
        password = request.form.get("password") or ""
        user = User.find_by_email(email) if email else None
        if user is None or not user.is_active or not user.check_password(password):
            error = "That e-mail and password do not match an account."
        elif user.is_portal:
            error = "Portal accounts cannot use the automation app."
        else:
            login_user(user, remember=bool(request.form.get("remember")))
            db.session.commit()
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", error=error, email=email), 200 if not error else 400


@bp.post("/logout")
def logout():
    logout_user()
    flash("You are signed out.")
    return redirect(url_for("auth.login"))
