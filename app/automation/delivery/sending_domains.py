"""A firm's sending domains: registering one (with a DKIM key made here or
uploaded, never shown again), the DNS record to publish, and which key
signs a message (docs/SENDING.md)."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.automation.delivery import dkim_signing
from app.automation.delivery.senders import domain_of, valid_domain
from app.extensions import db
from app.models import SendingDomain
from app.models.audit import record

_table = SendingDomain.__table__
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class DomainError(ValueError):
    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status


def _selector(value: str) -> str:
    selector = (value or "").strip().lower()
    if not _SELECTOR.match(selector):
        raise DomainError("dkim_selector", "letters, digits and dashes, like automation or s2026")
    return selector


def _key(pem: str | None) -> str:
    if pem is None or not pem.strip():
        return dkim_signing.generate_key()
    try:
        return dkim_signing.normalize_key(pem)
    except dkim_signing.KeyError_ as exc:
        raise DomainError("dkim_private_key", str(exc)) from None


def register(domain: str, selector: str = "automation", private_key: str | None = None):
    """Add a sending domain to the current firm, with a key made here when
    none is uploaded. 409 (``status``) when any firm has it already."""
    try:
        name = valid_domain(domain)
    except ValueError as exc:
        raise DomainError("domain", str(exc)) from None
    selector = _selector(selector)
    taken = db.session.execute(
        select(_table.c.id).where(_table.c.domain == name)  # across firms, on purpose
    ).first()
    if taken is not None:
        raise DomainError("domain", "this domain is registered already", status=409)
    entry = SendingDomain(domain=name, dkim_selector=selector, dkim_private_key=_key(private_key))
    db.session.add(entry)
    db.session.flush()
    record("sending_domain.created", entry, data={"domain": name, "selector": selector})
    return entry


def change_key(entry: SendingDomain, selector: str | None, private_key: str | None) -> None:
    """A new selector and/or key (a new key is made when none is given);
    the old record can stay published until mail signed with it is read."""
    if selector is not None:
        entry.dkim_selector = _selector(selector)
    entry.dkim_private_key = _key(private_key)
    record("sending_domain.key_changed", entry, data={"selector": entry.dkim_selector})


def remove(entry: SendingDomain) -> None:
    record("sending_domain.deleted", entry, data={"domain": entry.domain})
    db.session.delete(entry)


def dns_record(entry: SendingDomain) -> dict | None:
    if not entry.dkim_private_key:
        return None
    return {
        "type": "TXT",
        "name": dkim_signing.record_name(entry.dkim_selector, entry.domain),
        "value": dkim_signing.public_record(entry.dkim_private_key),
    }


def as_dict(entry: SendingDomain) -> dict:
    return {
        "id": entry.id,
        "domain": entry.domain,
        "dkim_selector": entry.dkim_selector,
        "has_dkim_key": bool(entry.dkim_private_key),
        "dns_record": dns_record(entry),
        "created_at": entry.created_at,
    }


# --- signing, for the dispatcher --------------------------------------------------


def domains_of(firm_id: int) -> list[str]:
    """Every sending domain of a firm (the dispatcher, outside the tenancy
    hook: filtered by ``firm_id`` here)."""
    rows = db.session.scalars(select(_table.c.domain).where(_table.c.firm_id == firm_id))
    return sorted(rows)


def keys_of(firm_id: int) -> list[tuple[str, str, str]]:
    """(domain, selector, key) of a firm's domains with a key, longest
    domain first (a subdomain's own key wins over its parent's)."""
    rows = db.session.execute(
        select(_table.c.domain, _table.c.dkim_selector, _table.c.dkim_private_key).where(
            _table.c.firm_id == firm_id, _table.c.dkim_private_key != ""
        )
    ).all()
    return sorted((tuple(row) for row in rows), key=lambda r: -len(r[0]))


def signer_for(keys: list[tuple[str, str, str]], from_address: str):
    domain = domain_of(from_address)
    for name, selector, pem in keys:
        if domain == name or domain.endswith(f".{name}"):
            return dkim_signing.signer(selector, name, pem)
    return None
