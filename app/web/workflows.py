"""The workflow list page (/automation)."""

from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select

from app.auth import login_required_page
from app.extensions import db
from app.models import Workflow

bp = Blueprint("workflows", __name__, url_prefix="/automation")


@bp.get("", strict_slashes=False)
@login_required_page
def list_workflows():
    workflows = db.session.scalars(select(Workflow).order_by(Workflow.updated_at.desc())).all()
    return render_template("workflows/list.html", workflows=workflows)
