"""The firm's webhook signing secret: rotating it, from the admin page or
the API (docs/CONTRACT.md "Operations"). After a rotation deliveries carry
a signature with the old secret too for 24 hours (``Firm.rotate_webhook_secret``)."""

from __future__ import annotations

from app.extensions import db
from app.models import Firm
from app.models.audit import record


def rotate(firm: Firm) -> Firm:
    """A new secret, one audit entry (``webhook_secret.rotated``); commits."""
    firm.rotate_webhook_secret()
    record("webhook_secret.rotated", firm)
    db.session.commit()
    return firm
