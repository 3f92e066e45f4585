"""The public-form editor's input: rows of fields posted as
``fields-<i>-name``, ``-label``, ``-type``, ``-required``, ``-remove``,
checked into the CONTRACT's ``[{"name", "label", "type", "required"}]``."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from app.automation.triggers.forms import FIELD_TYPES

CONTACT_FIELDS = ("email", "first_name", "last_name", "phone")
_CUSTOM = re.compile(r"^custom\.[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_FIELDS = 50
BLANK_ROWS = 2


def field_rows(fields: list[dict]) -> list[dict]:
    """Rows for the editor: the form's fields plus blank rows to fill in."""
    rows = [
        {
            "name": spec.get("name", ""),
            "label": spec.get("label", ""),
            "type": spec.get("type", "text"),
            "required": bool(spec.get("required")),
        }
        for spec in fields
    ]
    rows.extend(
        {"name": "", "label": "", "type": "text", "required": False} for _ in range(BLANK_ROWS)
    )
    return rows


def read_rows(form) -> list[dict]:
    try:
        count = min(int(form.get("field_count", "0")), MAX_FIELDS + BLANK_ROWS)
    except ValueError:
        count = 0
    rows = []
    for i in range(max(count, 0)):
        prefix = f"fields-{i}-"
        rows.append(
            {
                "name": (form.get(prefix + "name") or "").strip(),
                "label": (form.get(prefix + "label") or "").strip(),
                "type": (form.get(prefix + "type") or "text").strip(),
                "required": form.get(prefix + "required") == "1",
                "remove": form.get(prefix + "remove") == "1",
            }
        )
    return rows


def clean_rows(rows: list[dict]) -> tuple[list[dict], dict[int, str]]:
    """(fields to store, errors by row index). Blank and removed rows drop out."""
    fields: list[dict] = []
    errors: dict[int, str] = {}
    seen: set[str] = set()
    for index, row in enumerate(rows):
        if row.get("remove") or (not row["name"] and not row["label"]):
            continue
        name = row["name"]
        if name not in CONTACT_FIELDS and not _CUSTOM.match(name):
            errors[index] = (
                "Field must be email, first_name, last_name, phone or custom.<key> "
                "(letters, digits, _)."
            )
            continue
        if name in seen:
            errors[index] = f"{name} is on the form twice."
            continue
        if row["type"] not in FIELD_TYPES:
            errors[index] = f"Choose a type: {', '.join(sorted(FIELD_TYPES))}."
            continue
        if len(row["label"]) > 200:
            errors[index] = "Keep the label under 200 characters."
            continue
        seen.add(name)
        label = row["label"] or name.removeprefix("custom.").replace("_", " ").capitalize()
        fields.append(
            {"name": name, "label": label, "type": row["type"], "required": row["required"]}
        )
    if len(fields) > MAX_FIELDS:
        errors[-1] = f"A form may have at most {MAX_FIELDS} fields."
    return fields, errors


def redirect_error(url: str) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        return "Enter a full http(s) address, e.g. https://example.com/thanks, or leave it empty."
    return None
