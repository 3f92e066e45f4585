"""Public forms: create, update, delete. The form pages (app/web/crm_pages.py)
and the API (app/api/crm.py) both call these, so a form's rules live once:
the name is cleaned like a list's, the fields are contact columns or
``custom.<key>`` of a known type, each once, at most :data:`MAX_FIELDS`, a
field without a label gets one from its name, the redirect is a full
http(s) address and an empty thank-you message means the default.

Every refusal names its field; several at once are one :class:`CrmError`
whose ``errors`` are keyed ``name``, ``success_message``, ``redirect_url``,
``fields.<index>`` (a field at that position of the given list) and
``fields`` (too many). Each operation audits and commits once; nothing is
changed when anything is refused.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from app.automation.crm.errors import CrmError, name_error
from app.automation.crm.saving import delete_row, save_changed, save_new
from app.models import Form

NAME_MAX = 200
LABEL_MAX = 200
MESSAGE_MAX = 5000
REDIRECT_MAX = 2000
MAX_FIELDS = 50
DEFAULT_MESSAGE = "Thank you!"
CONTACT_FIELDS = ("email", "first_name", "last_name", "phone", "timezone")
FIELD_TYPES = frozenset(
    {"text", "email", "tel", "number", "date", "textarea", "checkbox", "hidden", "url"}
)
DEFAULT_FIELDS = (
    {"name": "email", "label": "Email", "type": "email", "required": True},
    {"name": "first_name", "label": "First name", "type": "text", "required": False},
)
# What a form may set besides its name and fields (CONTRACT "Forms").
SETTINGS = (
    "success_message",
    "redirect_url",
    "update_existing",
    "double_opt_in",
    "confirm_subject",
    "confirm_body",
    "consent_text",
)
_CUSTOM = re.compile(r"^custom\.[A-Za-z_][A-Za-z0-9_]{0,63}$")
FIELD_NAME_HELP = (
    "Field must be email, first_name, last_name, phone, timezone or custom.<key> "
    "(letters, digits, _)."
)


def clean_fields(specs: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """(fields to store, errors keyed ``fields.<index>`` / ``fields``).
    A spec is ``{"name", "label", "type", "required"}``; a blank one (no name,
    no label) or one marked ``remove`` drops out."""
    fields: list[dict] = []
    errors: dict[str, str] = {}
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        name = str(spec.get("name") or "").strip()
        label = str(spec.get("label") or "").strip()
        kind = str(spec.get("type") or "text").strip()
        if spec.get("remove") or (not name and not label):
            continue
        where = f"fields.{index}"
        if name not in CONTACT_FIELDS and not _CUSTOM.match(name):
            errors[where] = FIELD_NAME_HELP
        elif name in seen:
            errors[where] = f"{name} is on the form twice."
        elif kind not in FIELD_TYPES:
            errors[where] = f"Choose a type: {', '.join(sorted(FIELD_TYPES))}."
        elif len(label) > LABEL_MAX:
            errors[where] = f"Keep the label under {LABEL_MAX} characters."
        else:
            seen.add(name)
            label = label or name.removeprefix("custom.").replace("_", " ").capitalize()
            fields.append(
                {"name": name, "label": label, "type": kind, "required": bool(spec.get("required"))}
            )
    if len(fields) > MAX_FIELDS:
        errors["fields"] = f"A form may have at most {MAX_FIELDS} fields."
    return fields, errors


def redirect_error(url: str) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > REDIRECT_MAX:
        return "Enter a full http(s) address, e.g. https://example.com/thanks, or leave it empty."
    return None


def _checked(changes: dict) -> dict:
    """The columns to set from ``changes`` (keys: ``name``, ``fields``,
    :data:`SETTINGS`); raises one CrmError naming every bad field."""
    clean = dict(changes)
    errors: dict[str, str] = {}
    if "name" in changes:
        clean["name"], error = name_error(changes["name"], NAME_MAX)
        if error:
            errors["name"] = error
    if "success_message" in changes:
        message = str(changes["success_message"] or "").strip()
        if len(message) > MESSAGE_MAX:
            errors["success_message"] = f"Keep the message under {MESSAGE_MAX:,} characters."
        clean["success_message"] = message or DEFAULT_MESSAGE
    if "redirect_url" in changes:
        clean["redirect_url"] = str(changes["redirect_url"] or "").strip()
        if problem := redirect_error(clean["redirect_url"]):
            errors["redirect_url"] = problem
    if "fields" in changes:
        clean["fields"], field_errors = clean_fields(list(changes["fields"] or []))
        errors.update(field_errors)
    unknown = set(changes) - {"name", "fields", *SETTINGS}
    if unknown:
        raise ValueError(f"not a form setting: {', '.join(sorted(unknown))}")
    if errors:
        raise CrmError.of(errors)
    return clean


def create_form(name: str | None, fields: list[dict] | None = None, **settings) -> Form:
    """A new form; without ``fields``, an e-mail and a first-name field.
    Its ``form_key`` (the public /f/<form_key>) is generated."""
    specs = [dict(spec) for spec in DEFAULT_FIELDS] if fields is None else fields
    columns = _checked({"name": name, "fields": specs, **settings})
    form = Form(**columns)
    return save_new(form, "form.created", {"name": form.name})


def update_form(form: Form, changes: dict) -> Form:
    """Set the given columns (``form_key`` is not one of them)."""
    columns = _checked(changes)
    for name, value in columns.items():
        setattr(form, name, value)
    return save_changed(form, "form.updated", columns)


def delete_form(form: Form) -> None:
    """The form goes with its submissions; contacts it made stay."""
    delete_row(form, "form.deleted", {"name": form.name})
