"""Double opt-in: a form post waits for its confirmation link.

A post to a form with ``double_opt_in`` becomes a :class:`PendingSignup`
(nothing reaches a contact: no new contact, no changed field, no trigger,
no visitor cookie) and a confirmation e-mail with a signed link that
expires after ``DOUBLE_OPT_IN_HOURS``. Following the link shows a button
(a link scanner that fetches the page confirms nothing); pressing it
applies the post as the form would (``update_existing``), keeps a consent
record (when, form, IP, user agent, the words shown), fires
``form_submitted`` and ties the browser to the contact. Unconfirmed
sign-ups are deleted once expired (:func:`purge_expired`, from the sweep).

The confirmation e-mail is an outbox row like any other (the suppression
gate applies; it is transactional, so marketing opt-outs do not).
Subject and body are the form's, rendered in the template sandbox with
``form``, ``fields`` and ``confirm_url``.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select

from app.automation.delivery import signing
from app.automation.delivery.gates import Candidate, GateRun
from app.automation.delivery.outbox import email_message_id
from app.automation.delivery.tracking import literal_links
from app.automation.templating.render import TemplateError, render_isolated
from app.automation.triggers import forms
from app.clock import ensure_utc, now
from app.extensions import db
from app.models import Form, OutboxMessage, PendingSignup
from app.queue import kick_delivery
from app.tenancy import firm_context

DEFAULT_SUBJECT = "Please confirm your subscription to {{ form.name }}"
DEFAULT_BODY = (
    "Hello,\n\nplease confirm that you want to receive e-mails from us:\n\n"
    "{{ confirm_url }}\n\nIf you did not sign up, ignore this message: nothing happens."
)
RESEND_AFTER = timedelta(minutes=10)


class BadConfirmation(Exception):
    """A confirmation link that is forged, for nothing, or too old."""

    def __init__(self, message: str, expired: bool = False):
        super().__init__(message)
        self.expired = expired


TOKEN_PURPOSE = "double-opt-in"


def _max_age() -> timedelta:
    return timedelta(hours=float(current_app.config.get("DOUBLE_OPT_IN_HOURS") or 72))


def confirm_url(signup: PendingSignup) -> str:
    token = signing.timed_token(TOKEN_PURPOSE, [signup.firm_id, signup.id])
    return f"{current_app.config['BASE_URL'].rstrip('/')}/f/confirm/{token}"


def start(form: Form, values: dict, *, ip: str, user_agent: str) -> PendingSignup:
    """Record the post as pending and queue its confirmation e-mail (once:
    the same address posting again within RESEND_AFTER gets no second one)."""
    with firm_context(form.firm_id):
        moment = now()
        recent = db.session.scalars(
            select(PendingSignup)
            .where(
                PendingSignup.form_id == form.id,
                PendingSignup.email == values["email"],
                PendingSignup.confirmed_at.is_(None),
                PendingSignup.created_at > moment - RESEND_AFTER,
            )
            .order_by(PendingSignup.id.desc())
        ).first()
        if recent is not None:
            return recent
        signup = PendingSignup(
            form_id=form.id,
            email=values["email"],
            data=values,
            wording=form.consent_text or "",
            ip=(ip or "")[:64],
            user_agent=(user_agent or "")[:1000],
            created_at=moment,
            expires_at=moment + _max_age(),
        )
        db.session.add(signup)
        db.session.flush()
        db.session.add(OutboxMessage(**_confirmation_row(form, signup, values)))
        db.session.commit()
        _kick()
        return signup


def _links(body: str, confirm: str) -> dict:
    links = literal_links(body)
    links["exact"] = sorted({*links["exact"], confirm})
    return links


def _confirmation_row(form: Form, signup: PendingSignup, values: dict) -> dict:
    url = confirm_url(signup)
    context = {"form": {"name": form.name}, "fields": dict(values), "confirm_url": url}
    body = form.confirm_body or DEFAULT_BODY
    html = "<" in body
    # A public form post renders the firm's wording: in a forked child with
    # a memory and CPU limit (templating/isolation.py).
    subject, rendered = render_isolated(
        [(form.confirm_subject or DEFAULT_SUBJECT, context, False), (body, context, html)]
    )
    for output in (subject, rendered):
        if isinstance(output, TemplateError):
            raise output
    key = signing.message_key("doi", signup.firm_id, signup.id)
    sender = current_app.config["MAIL_FROM"]
    row = {
        "firm_id": form.firm_id,
        "contact_id": None,
        "node_id": "double_opt_in",
        "visit": signup.id,
        "channel": "email",
        "to_address": signup.email,
        "from_address": sender,
        "subject": " ".join(subject.split())[:998],
        "body_text": "" if html else rendered,
        "body_html": rendered if html else "",
        "payload": {
            "topic": {"id": None, "name": "Confirmations", "kind": "transactional"},
            # Tracked: the links the wording wrote, and our confirm link.
            "links": _links(body, url),
        },
        "message_id": email_message_id(key, sender),
        "status": "pending" if current_app.config.get("SMTP_HOST") else "recorded",
        "next_attempt_at": now(),
    }
    candidate = Candidate(firm_id=form.firm_id, channel="email", address=signup.email)
    verdict = GateRun(db.session.connection(), "step", [candidate]).check(candidate)
    if not verdict.sends:
        row.update(status="skipped", next_attempt_at=None, response=verdict.as_result())
    return row


def _kick() -> None:
    kick_delivery()


def read(token: str) -> PendingSignup:
    """The sign-up a link names, or BadConfirmation (forged, gone, expired)."""
    if not token or len(token) > 500:
        raise BadConfirmation("This confirmation link is not valid.")
    try:
        firm_id, signup_id = signing.read_timed_token(
            TOKEN_PURPOSE, token, max_age=int(_max_age().total_seconds())
        )
    except signing.InvalidToken as exc:
        expired = "expired" in str(exc).lower() or "age" in str(exc).lower()
        message = (
            "This confirmation link has expired. Please sign up again."
            if expired
            else "This confirmation link is not valid."
        )
        raise BadConfirmation(message, expired=expired) from None
    with firm_context(int(firm_id)):
        signup = db.session.scalars(
            select(PendingSignup).where(PendingSignup.id == int(signup_id))
        ).first()
        if signup is None:
            raise BadConfirmation("This confirmation link has expired. Please sign up again.", True)
        if signup.confirmed_at is None and ensure_utc(signup.expires_at) <= now():
            raise BadConfirmation("This confirmation link has expired. Please sign up again.", True)
        return signup


def confirm(token: str, *, ip: str, user_agent: str):
    """Apply a pending sign-up once; returns (form, contact id). A second
    press finds it confirmed and changes nothing."""
    signup = read(token)
    with firm_context(signup.firm_id):
        form = db.session.get(Form, signup.form_id)
        if signup.confirmed_at is not None:
            return form, signup.contact_id
        claimed = db.session.execute(
            PendingSignup.__table__.update()
            .where(PendingSignup.id == signup.id, PendingSignup.confirmed_at.is_(None))
            .values(confirmed_at=now())
        ).rowcount
        db.session.commit()
        if claimed != 1:
            db.session.refresh(signup)
            return form, signup.contact_id
        submission, contact, _ = forms.submit(
            form,
            dict(signup.data),
            user_agent,
            key=f"doi-{signup.id}",
            consent={
                "method": "double_opt_in",
                "wording": signup.wording,
                "ip": signup.ip,
                "user_agent": signup.user_agent,
                "given_at": signup.created_at,
                "confirmed_at": now(),
                "confirm_ip": ip,
            },
        )
        db.session.execute(
            PendingSignup.__table__.update()
            .where(PendingSignup.id == signup.id)
            .values(contact_id=contact.id)
        )
        db.session.commit()
        return form, contact.id


def purge_expired() -> int:
    """Delete unconfirmed sign-ups past their time (system work, all firms):
    they never became contacts and never started anything."""
    result = db.session.execute(
        delete(PendingSignup)
        .where(PendingSignup.confirmed_at.is_(None), PendingSignup.expires_at <= now())
        .execution_options(all_firms=True, synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount or 0
