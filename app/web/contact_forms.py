"""Checking the contact form: one error message per field, nothing saved on
bad input. Custom fields are typed as ``key = value`` lines, the way a
marketer writes them, and stored as a JSON object."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from app.automation.crm import contacts
from app.models import Contact

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
LIMITS = {"first_name": 100, "last_name": 100, "phone": 40}


def form_values(contact: Contact | None) -> dict:
    """The form's initial values for a new or an existing contact."""
    if contact is None:
        return {
            "email": "",
            "first_name": "",
            "last_name": "",
            "phone": "",
            "score": "0",
            "timezone": "UTC",
            "custom_fields": "",
            "unsubscribed": False,
        }
    return {
        "email": contact.email,
        "first_name": contact.first_name or "",
        "last_name": contact.last_name or "",
        "phone": contact.phone or "",
        "score": str(contact.score or 0),
        "timezone": contact.timezone or "UTC",
        "custom_fields": "\n".join(
            f"{key} = {value}" for key, value in sorted((contact.custom_fields or {}).items())
        ),
        "unsubscribed": bool(contact.unsubscribed),
    }


def read_form(form) -> dict:
    return {
        "email": (form.get("email") or "").strip(),
        "first_name": (form.get("first_name") or "").strip(),
        "last_name": (form.get("last_name") or "").strip(),
        "phone": (form.get("phone") or "").strip(),
        "score": (form.get("score") or "0").strip(),
        "timezone": (form.get("timezone") or "UTC").strip(),
        "custom_fields": form.get("custom_fields") or "",
        "unsubscribed": form.get("unsubscribed") == "1",
    }


def clean(values: dict, contact: Contact | None) -> tuple[dict, dict[str, str]]:
    """(clean data, errors by field). ``contact`` is the one being edited."""
    errors: dict[str, str] = {}
    data: dict = {}
    try:
        data["email"] = validate_email(
            values["email"], check_deliverability=False
        ).normalized.lower()
    except EmailNotValidError as exc:
        errors["email"] = str(exc) if values["email"] else "Enter an e-mail address."
    else:
        # Shown with the other fields' errors; the save checks it again.
        if contacts.email_taken(data["email"], getattr(contact, "id", None)):
            errors["email"] = contacts.TAKEN
    for name, limit in LIMITS.items():
        if len(values[name]) > limit:
            errors[name] = f"Keep it under {limit} characters."
        data[name] = values[name]
    try:
        data["score"] = int(values["score"] or 0)
        if abs(data["score"]) > 1_000_000_000:
            raise ValueError
    except ValueError:
        errors["score"] = "Enter a whole number."
    try:
        ZoneInfo(values["timezone"] or "UTC")
        data["timezone"] = values["timezone"] or "UTC"
    except (ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = "Use a time zone name such as Europe/Berlin or America/New_York."
    custom, custom_error = parse_custom_fields(values["custom_fields"])
    if custom_error:
        errors["custom_fields"] = custom_error
    data["custom_fields"] = custom
    data["unsubscribed"] = values["unsubscribed"]
    return data, errors


def parse_custom_fields(text: str) -> tuple[dict, str | None]:
    fields: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            return fields, (
                f"Line {number}: write key = value, with a key of letters, digits and _ "
                "(e.g. company = Acme)."
            )
        fields[key] = value.strip()
    return fields, None
