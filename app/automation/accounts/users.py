"""Users and API tokens of a firm: the one way the admin page
(``app/web/admin.py``) and the CLI (``app/commands.py``) create them.

Both run inside the firm's context (``app/tenancy.py``): the uniqueness of
an address is checked within the firm only, and new rows are stamped with
it. Each function checks, adds the row, writes one audit entry
(``user.created``, ``token.issued``) and commits. A refusal is an
:class:`AccountError` with a message for each field at fault.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select

from app.extensions import db
from app.models import ROLES, ApiToken, User
from app.models.audit import record

PASSWORD_MIN = 12
NAME_MAX = 200


class AccountError(ValueError):
    """``fields``: ``{field: message}`` for each input at fault."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(fields.values()))
        self.fields = fields


def clean_email(email: str | None) -> str:
    """The address as stored: normalized, lower case."""
    email = (email or "").strip()
    if not email:
        raise AccountError({"email": "Enter an e-mail address."})
    try:
        # test_environment: the RFC 6761 ".test" names are taken, as for
        # senders and suppressions (app/automation/delivery/senders.py).
        checked = validate_email(email, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise AccountError({"email": str(exc)}) from None
    return checked.normalized.lower()


def create_user(
    email: str | None, password: str | None, role: str | None, name: str | None = ""
) -> User:
    """A new user of the current firm; every field at fault is named."""
    errors: dict[str, str] = {}
    try:
        email = clean_email(email)
    except AccountError as exc:
        errors.update(exc.fields)
    else:
        # Unique within the firm only (tenancy scopes this query): whether the
        # address has an account in another firm is not the caller's to learn.
        if db.session.scalars(select(User).where(User.email == email)).first():
            errors["email"] = "This e-mail address already has an account in your firm."
    if role not in ROLES:
        errors["role"] = "Choose admin, marketer or portal."
    if len(password or "") < PASSWORD_MIN:
        errors["password"] = f"Use at least {PASSWORD_MIN} characters."
    if errors:
        raise AccountError(errors)
    user = User(email=email, name=(name or "").strip()[:NAME_MAX], role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    record("user.created", user, data={"email": user.email, "role": user.role})
    db.session.commit()
    return user


def issue_token(owner: User | None, name: str | None) -> tuple[ApiToken, str]:
    """A new API token for ``owner``: the row and the raw token, which is
    shown once and never stored (``ApiToken.issue`` keeps its hash)."""
    name = " ".join((name or "").split())[:NAME_MAX]
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Name the token after what uses it, e.g. “CRM sync”."
    if owner is None or not owner.is_active:
        errors["user_id"] = "Choose an active user of your firm."
    elif owner.is_portal:
        errors["user_id"] = "Portal users cannot use the API."
    if errors:
        raise AccountError(errors)
    token, raw = ApiToken.issue(owner, name=name)
    db.session.flush()
    record("token.issued", token, data={"name": name, "user": owner.email})
    db.session.commit()
    return token, raw
