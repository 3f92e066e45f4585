"""What a refused CRM operation raises (the pages and the API both catch it)."""

from __future__ import annotations


class CrmError(ValueError):
    """A refused CRM operation; ``field`` names the input at fault (or
    None); ``conflict`` is True when the input was fine but clashes with
    what exists (a taken name: the API's 409, the page's form error).
    ``errors`` holds every field's message when several are at fault at
    once (``{"name": ..., "fields.2": ...}``); ``message``/``field`` are
    then the first of them."""

    def __init__(
        self,
        message: str,
        field: str | None = None,
        conflict: bool = False,
        errors: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.conflict = conflict
        self.errors = dict(errors) if errors else ({field: message} if field else {})

    @classmethod
    def of(cls, errors: dict[str, str]) -> CrmError:
        """One refusal naming every field of ``errors`` (not empty)."""
        field, message = next(iter(errors.items()))
        return cls(message, field=field, errors=errors)


def name_error(raw: str | None, limit: int) -> tuple[str, str | None]:
    """(the name with spaces collapsed, why it is refused or None)."""
    name = " ".join((raw or "").split())
    if not name:
        return name, "Enter a name."
    if len(name) > limit:
        return name, f"Keep it under {limit} characters."
    return name, None


def clean_name(raw: str | None, limit: int, field: str = "name") -> str:
    """Spaces collapsed; empty or longer than ``limit`` refused."""
    name, error = name_error(raw, limit)
    if error:
        raise CrmError(error, field=field)
    return name
