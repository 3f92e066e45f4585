"""The signed-in user's own settings: the time zone pages show times in."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import update

from app.auth import login_required_page
from app.clock import now
from app.extensions import db
from app.models import User
from app.web.formatting import firm_zone_name, zone_choices, zone_named

bp = Blueprint("account", __name__, url_prefix="/account/timezone")


def _page(error: str | None = None, status: int = 200):
    return (
        render_template(
            "account/settings.html",
            zones=zone_choices(),
            firm_zone=firm_zone_name(g.user.firm),
            error=error,
            now=now(),
        ),
        status,
    )


@bp.get("", strict_slashes=False)
@login_required_page
def settings():
    return _page()


@bp.post("", strict_slashes=False)
@login_required_page
def save_settings():
    name = (request.form.get("timezone") or "").strip()
    if name and zone_named(name) is None:
        return _page(f"“{name[:64]}” is not a time zone; pick one from the list.", 422)
    # An UPDATE, not a change to g.user: with a bearer token g.user is a
    # copy merged from the per-process token cache (app/auth.py).
    db.session.execute(update(User).where(User.id == g.user.id).values(timezone=name or None))
    db.session.commit()
    flash("Settings saved.")
    return redirect(url_for("account.settings"))
