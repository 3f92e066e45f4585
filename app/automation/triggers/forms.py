"""Public form submissions: check, upsert the contact, fire ``form_submitted``.

A form's ``fields`` are ``[{"name", "label", "type", "required"}]``; a name
is a contact column (``email``, ``first_name``, ``last_name``, ``phone``,
``timezone``) or ``custom.<key>``; anything else is kept in the submission
only. Columns a visitor must never set (score, unsubscribed...) are not
writable from a form whatever the field list says.

The public page has no session, so instead of the session CSRF token it
embeds a signed, time-limited form token (:func:`form_token`), plus a
honeypot field that people never see and bots fill in.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.automation.crm.forms import FIELD_TYPES
from app.automation.delivery import signing
from app.automation.hooks import facts as hook_facts
from app.automation.triggers.bus import emit
from app.extensions import db
from app.models import ConsentRecord, Contact, Form, FormSubmission
from app.models.audit import record
from app.queue import kick_hooks
from app.tenancy import firm_context

TOKEN_MAX_AGE = 24 * 3600
HONEYPOT = "website_url"
TOKEN_FIELD = "_form_token"
CONTACT_COLUMNS = {"email": 320, "first_name": 100, "last_name": 100, "phone": 40, "timezone": 64}
MAX_VALUE = 5000
_CUSTOM = re.compile(r"^custom\.[A-Za-z0-9_\-]{1,64}$")


class FormExpired(Exception):
    """The form token is missing, forged, for another form or too old."""


@dataclass
class Submission:
    values: dict = field(default_factory=dict)  # field name -> cleaned value
    errors: dict[str, list[str]] = field(default_factory=dict)
    spam: bool = False


def find_form(form_key: str) -> Form | None:
    """Form keys are unique across firms; the lookup names no firm."""
    if not form_key or len(form_key) > 64:
        return None
    stmt = select(Form).where(Form.form_key == form_key)
    return db.session.scalars(stmt.execution_options(all_firms=True)).first()


def form_fields(form: Form) -> list[dict]:
    """The form's fields, normalised (an email field is always present)."""
    fields = []
    for spec in form.fields or []:
        if not isinstance(spec, dict) or not str(spec.get("name") or "").strip():
            continue
        kind = spec.get("type") if spec.get("type") in FIELD_TYPES else "text"
        fields.append(
            {
                "name": str(spec["name"]).strip(),
                "label": str(spec.get("label") or spec["name"]),
                "type": kind,
                "required": bool(spec.get("required")),
            }
        )
    if not any(f["name"] == "email" for f in fields):
        fields.insert(0, {"name": "email", "label": "Email", "type": "email", "required": True})
    return fields


TOKEN_PURPOSE = "public-form"


def form_token(form: Form) -> str:
    return signing.timed_token(TOKEN_PURPOSE, {"form": form.form_key})


def submission_key(token: str, values: dict) -> str:
    """What makes two posts one submission: the same page (its token) sent
    with the same values -- a double click, a browser or proxy resend."""
    raw = json.dumps([token, values], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def check_token(form: Form, token: str | None) -> None:
    if not token or len(token) > 500:
        raise FormExpired("missing form token")
    try:
        payload = signing.read_timed_token(TOKEN_PURPOSE, token, max_age=TOKEN_MAX_AGE)
    except signing.InvalidToken as exc:
        raise FormExpired("invalid or expired form token") from exc
    if not isinstance(payload, dict) or payload.get("form") != form.form_key:
        raise FormExpired("form token of another form")


def clean(form: Form, raw: dict) -> Submission:
    """Validate ``raw`` (form or JSON body) against the form's fields."""
    result = Submission()
    if str(raw.get(HONEYPOT) or "").strip():
        result.spam = True
        return result
    for spec in form_fields(form):
        name, kind = spec["name"], spec["type"]
        value = raw.get(name)
        if kind == "checkbox":
            value = _truthy(value)
            if spec["required"] and not value:
                result.errors.setdefault(name, []).append("required")
            result.values[name] = value
            continue
        if isinstance(value, dict | list):
            result.errors.setdefault(name, []).append("must be a single value")
            continue
        text = "" if value is None else str(value).strip()
        if not text:
            if spec["required"]:
                result.errors.setdefault(name, []).append("required")
            continue
        limit = CONTACT_COLUMNS.get(name, MAX_VALUE)
        if len(text) > limit:
            result.errors.setdefault(name, []).append(f"at most {limit} characters")
            continue
        problem = _type_problem(kind if name != "email" else "email", name, text)
        if problem:
            result.errors.setdefault(name, []).append(problem)
            continue
        result.values[name] = text.lower() if name == "email" else text
    return result


def _truthy(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in {"1", "on", "true", "yes"}


def _type_problem(kind: str, name: str, text: str) -> str | None:
    if kind == "email":
        try:
            validate_email(text, check_deliverability=False)
        except EmailNotValidError:
            return "not a valid e-mail address"
    elif kind == "number":
        try:
            float(text)
        except ValueError:
            return "not a number"
    elif kind == "date":
        try:
            date.fromisoformat(text)
        except ValueError:
            return "not a date (YYYY-MM-DD)"
    elif kind == "url" and not text.lower().startswith(("http://", "https://")):
        return "not a web address (http:// or https://)"
    if name == "timezone":
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            return "not a known time zone"
    return None


def submit(
    form: Form,
    values: dict,
    user_agent: str = "",
    *,
    key: str | None = None,
    consent: dict | None = None,
    _retry: bool = True,
) -> tuple[FormSubmission, Contact, list[int]]:
    """Upsert the contact by e-mail, record the submission, fire the trigger;
    returns the submission, the contact and the executions started.

    ``key`` (:func:`submission_key`) names the event, so the same post
    repeated starts workflows once (the bus drops a repeated event id);
    without it each call is its own event.

    Runs in the form's firm. The contact's own created/updated events fire
    from the CRM hooks (source "form"); ``form_submitted`` carries the
    submission. A known address is updated as the form's
    ``update_existing`` says (``fill_empty``: only its empty fields;
    ``overwrite``). ``consent`` (method, wording, ip, user_agent...) is
    kept as a consent record.
    The submission's ``new_contact`` says whether this post made the contact
    (only then may the visitor's cookie be tied to it)."""
    with firm_context(form.firm_id):
        session = db.session()
        session.info["event_source"] = "form"
        try:
            try:
                contact, created = _upsert(values, form.update_existing or "fill_empty")
                _keep_consent(form, contact, consent)
                submission = FormSubmission(
                    form_id=form.id,
                    contact_id=contact.id,
                    data=values,
                    user_agent=(user_agent or "")[:1000],
                )
                db.session.add(submission)
                db.session.flush()
                record(
                    "form.submitted",
                    form,
                    data={"submission_id": submission.id, "contact_id": contact.id},
                    actor="public",
                )
                hooked = hook_facts.form_submitted(form, submission)
                db.session.commit()
            except IntegrityError:
                # Two first submissions with one new e-mail at once: the
                # loser finds the winner's contact and updates it instead.
                db.session.rollback()
                if not _retry:
                    raise
                return submit(form, values, user_agent, key=key, consent=consent, _retry=False)
        finally:
            session.info.pop("event_source", None)
        submission_id, contact_id = submission.id, contact.id
        if hooked:
            kick_hooks()
        started = emit(
            form.firm_id,
            "form_submitted",
            contact_id,
            {"form_id": form.id, "submission_id": submission_id, "fields": values},
            event_id=f"form:{form.id}:{key}" if key else f"form:{submission_id}",
            source="form",
        )
        submission = db.session.get(FormSubmission, submission_id)
        submission.new_contact = created
        return submission, db.session.get(Contact, contact_id), started


def _upsert(values: dict, mode: str = "fill_empty") -> tuple[Contact, bool]:
    """The contact of this address, made or updated; and whether it is new.
    ``fill_empty`` leaves what a known contact has (an anonymous post must
    not rewrite someone's name); ``overwrite`` replaces it."""
    email = values["email"]
    # Addresses typed elsewhere may differ in case; they are the same person.
    stmt = select(Contact).where(func.lower(Contact.email) == email).order_by(Contact.id)
    contact = db.session.scalars(stmt).first()
    created = contact is None
    if created:
        contact = Contact(email=email)
        db.session.add(contact)
    replace = created or mode == "overwrite"
    for name, value in values.items():
        if name in CONTACT_COLUMNS and name != "email":
            current = getattr(contact, name, None)
            if replace or current in (None, "") or (name == "timezone" and current == "UTC"):
                setattr(contact, name, value)
    custom = {name[len("custom.") :]: v for name, v in values.items() if _CUSTOM.match(name)}
    if custom:
        existing = dict(contact.custom_fields or {})
        if replace:
            existing.update(custom)
        else:
            for key_, value in custom.items():
                if existing.get(key_) in (None, ""):
                    existing[key_] = value
        contact.custom_fields = existing
    db.session.flush()
    return contact, created


def _keep_consent(form: Form, contact: Contact, consent: dict | None) -> None:
    if consent is None:
        return
    given = dict(consent)
    given.pop("confirm_ip", None)
    db.session.add(ConsentRecord(contact_id=contact.id, form_id=form.id, **given))


def safe_redirect(url: str | None) -> str | None:
    """Only absolute http(s) addresses; never ``javascript:`` or the like."""
    url = (url or "").strip()
    return url if url.lower().startswith(("http://", "https://")) else None
