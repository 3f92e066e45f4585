"""What a refused CRM operation raises (the pages and the API both catch it)."""

from __future__ import annotations


class CrmError(ValueError):
    """A refused CRM operation; ``field`` names the input at fault (or
    None); ``conflict`` is True when the input was fine but clashes with
    what exists (a taken name: the API's 409, the page's form error)."""

    def __init__(self, message: str, field: str | None = None, conflict: bool = False):
        super().__init__(message)
        self.message = message
        self.field = field
        self.conflict = conflict


def clean_name(raw: str | None, limit: int, field: str = "name") -> str:
    """Spaces collapsed; empty or longer than ``limit`` refused."""
    name = " ".join((raw or "").split())
    if not name:
        raise CrmError("Enter a name.", field=field)
    if len(name) > limit:
        raise CrmError(f"Keep it under {limit} characters.", field=field)
    return name
