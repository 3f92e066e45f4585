"""Changing how a firm sends (frequency caps, rate limits, the automatic
pause) and resuming after a pause: the one path of the sending settings
page and the API (docs/CONTRACT.md "Sending safely"). The checks and the
words are :mod:`app.automation.delivery.pacing`; pausing and resuming are
:mod:`app.automation.delivery.pause`."""

from __future__ import annotations

from typing import Any

from app.automation.delivery import pacing, pause
from app.extensions import db
from app.models import Firm
from app.models.audit import record


def change(firm: Firm, values: Any, *, by: str) -> Firm:
    """Check ``values`` (raises :class:`pacing.SettingsError` naming the
    field), store them; ``paused`` pauses (as ``by``) or resumes by hand.
    One audit entry (``sending_settings.changed``, the fields given);
    commits."""
    checked = pacing.validated(values)
    paused = checked.pop("paused", None)
    if checked:
        firm.settings = pacing.merged(firm.settings, checked)
        db.session.flush()
    conn = db.session.connection()
    if paused is True:
        pause.pause(conn, firm.id, f"paused by {by}", by=by)
    elif paused is False:
        pause.resume(conn, firm.id)
    record("sending_settings.changed", firm, data={"fields": sorted(values)})
    db.session.commit()
    db.session.refresh(firm)
    return firm


def resume(firm: Firm) -> dict[str, int]:
    """Held steps and messages go now, once; one audit entry
    (``sending.resumed``, the counts); commits. Returns the counts."""
    woken = pause.resume(db.session.connection(), firm.id)
    record("sending.resumed", firm, data=woken)
    db.session.commit()
    db.session.refresh(firm)
    return woken
