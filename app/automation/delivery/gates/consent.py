"""The second gate: what the contact agreed to receive.

A contact who unsubscribed from all marketing gets no marketing e-mail.
Double opt-in needs no check here: an unconfirmed sign-up is not a
contact (nor a change to one) until its link is followed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from app.automation.delivery.gates.chain import SEND, Candidate, Gate, Verdict, register, skip
from app.automation.delivery.gates.suppression import CHUNK
from app.models import Contact

_contacts = Contact.__table__


@register
class ConsentGate(Gate):
    name = "consent"
    channels = frozenset({"email"})

    def prepare(self, conn: Connection, candidates: Sequence[Candidate]) -> dict:
        ids = sorted({c.contact_id for c in candidates if c.contact_id and c.contact is None})
        unsubscribed: dict[int, bool] = {}
        for start in range(0, len(ids), CHUNK):
            stmt = select(_contacts.c.id, _contacts.c.unsubscribed).where(
                _contacts.c.id.in_(ids[start : start + CHUNK])
            )
            unsubscribed.update((row[0], row[1]) for row in conn.execute(stmt))
        return {"unsubscribed": unsubscribed}

    def check(self, candidate: Candidate, state: dict) -> Verdict:
        if candidate.contact is not None:
            opted_out = bool(candidate.contact.get("unsubscribed"))
        else:
            opted_out = bool(state["unsubscribed"].get(candidate.contact_id))
        if opted_out:
            return skip("unsubscribed from all marketing", self.name)
        return SEND
