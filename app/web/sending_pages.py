"""The sending settings page: topics, sending domains (with the DKIM
record to publish) and the preference page's wording."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from app.auth import login_required_page
from app.automation.delivery import pacing, sending_domains, sending_settings, topics
from app.extensions import db
from app.models import Firm, SendingDomain, Topic
from app.models.audit import record
from app.web.pages import get_or_404

bp = Blueprint("sending", __name__, url_prefix="/sending")


def _page(status: int = 200, **extra):
    domains = db.session.scalars(select(SendingDomain).order_by(SendingDomain.domain)).all()
    firm = db.session.get(Firm, g.user.firm_id)
    context = {
        "topics": db.session.scalars(select(Topic).order_by(Topic.kind, Topic.name)).all(),
        "domains": [sending_domains.as_dict(d) for d in domains],
        "wording": (firm.settings or {}).get("preference_text", ""),
        "pacing": pacing.settings_of(firm.settings),
        "pacing_preview": pacing.preview(db.session.connection(), firm.id, firm.settings),
        "errors": {},
        "values": {},
        **extra,
    }
    return render_template("crm/sending.html", **context), status


@bp.get("", strict_slashes=False)
@login_required_page
def index():
    return _page()


@bp.post("/topics")
@login_required_page
def add_topic():
    values = {k: (request.form.get(k) or "").strip() for k in ("name", "description", "kind")}
    if values["kind"] not in ("marketing", "transactional"):
        values["kind"] = "marketing"
    try:
        topics.save_topic(None, values)
    except topics.TopicError as exc:
        db.session.rollback()
        return _page(400, errors={f"topic_{exc.field}": exc.message}, values=values)
    db.session.commit()
    flash(f"Added the topic “{values['name']}”.")
    return redirect(url_for("sending.index"))


@bp.post("/topics/<int:topic_id>/default")
@login_required_page
def make_default(topic_id: int):
    topic = get_or_404(Topic, topic_id)
    topics.save_topic(topic, {"is_default": True})
    db.session.commit()
    return redirect(url_for("sending.index"))


@bp.post("/domains")
@login_required_page
def add_domain():
    values = {k: (request.form.get(k) or "").strip() for k in ("domain", "dkim_selector")}
    key = request.form.get("dkim_private_key") or None
    try:
        sending_domains.register(values["domain"], values["dkim_selector"] or "automation", key)
    except sending_domains.DomainError as exc:
        db.session.rollback()
        return _page(400, errors={exc.field: exc.message}, values=values)
    db.session.commit()
    flash(f"Added {values['domain'].lower()}. Publish its DKIM record below.")
    return redirect(url_for("sending.index"))


@bp.post("/domains/<int:domain_id>/delete")
@login_required_page
def remove_domain(domain_id: int):
    sending_domains.remove(get_or_404(SendingDomain, domain_id))
    db.session.commit()
    return redirect(url_for("sending.index"))


@bp.post("/wording")
@login_required_page
def save_wording():
    text = (request.form.get("preference_text") or "").strip()
    if len(text) > 2000:
        return _page(400, errors={"preference_text": "Keep it under 2,000 characters."})
    firm = db.session.get(Firm, g.user.firm_id)
    firm.settings = {**(firm.settings or {}), "preference_text": text}
    record("firm.preference_text", firm, data={"length": len(text)})
    db.session.commit()
    flash("Saved the preference page's wording.")
    return redirect(url_for("sending.index"))


@bp.post("/pacing")
@login_required_page
def save_pacing():
    """Frequency caps, rate limits and the automatic pause (admins)."""
    if not g.user.is_admin:
        return _page(403, errors={"pacing": "Only admins may change how the firm sends."})
    firm = db.session.get(Firm, g.user.firm_id)
    try:
        # The API's change too (app/automation/delivery/sending_settings.py).
        sending_settings.change(firm, pacing.from_form(request.form), by=g.user.email)
    except pacing.SettingsError as exc:
        db.session.rollback()
        return _page(400, errors={"pacing": str(exc), f"pacing_{exc.field}": exc.message})
    flash("Saved how the firm sends.")
    return redirect(url_for("sending.index") + "#pacing")


@bp.post("/resume")
@login_required_page
def resume():
    if not g.user.is_admin:
        return _page(403, errors={"pacing": "Only admins may resume sending."})
    woken = sending_settings.resume(db.session.get(Firm, g.user.firm_id))
    flash(f"Sending resumed: {woken['steps'] + woken['messages']} held messages go now.")
    return redirect(url_for("sending.index") + "#pacing")
