"""The public-form editor's input: rows of fields posted as
``fields-<i>-name``, ``-label``, ``-type``, ``-required``, ``-remove``,
read into the specs that ``app.automation.crm.forms`` checks and stores as
the CONTRACT's ``[{"name", "label", "type", "required"}]``."""

from __future__ import annotations

from app.automation.crm.forms import MAX_FIELDS

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


def page_errors(errors: dict[str, str]) -> dict:
    """The domain's errors (app/automation/crm/forms.py) as the editor shows
    them: by input, with the field rows' under ``rows`` by row index (-1:
    about all of them)."""
    shown: dict = {}
    for key, message in errors.items():
        head, _, index = key.partition(".")
        if head == "fields":
            shown.setdefault("rows", {})[int(index) if index else -1] = message
        else:
            shown[key] = message
    return shown
