"""The second gate: what the contact agreed to receive.

An e-mail goes under a topic (its step's ``topic``, else the firm's default
marketing topic). A transactional topic ignores marketing opt-outs (never
the suppression list, which the first gate checked). A marketing one is
skipped when the contact unsubscribed from all marketing, or from that
topic. The gate puts the topic it resolved on the candidate
(``extra["topic"]``), so the message is written under it (List-Id, the
one-click opt-out).

Double opt-in needs no check here: an unconfirmed sign-up is not a contact
(nor a change to one) until its link is followed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from app.automation.delivery import topics
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
        firm_topics = topics.firm_topics(conn, {c.firm_id for c in candidates})
        opted = (
            topics.opt_outs(conn, {c.contact_id for c in candidates if c.contact_id})
            if firm_topics
            else {}
        )
        return {"unsubscribed": unsubscribed, "topics": firm_topics, "opted": opted}

    def check(self, candidate: Candidate, state: dict) -> Verdict:
        topic = topics.resolve(state["topics"], candidate.firm_id, candidate.topic_id)
        candidate.extra["topic"] = topic
        if topic is not None and topic["kind"] == "transactional":
            return SEND
        if candidate.contact is not None:
            opted_out = bool(candidate.contact.get("unsubscribed"))
        else:
            opted_out = bool(state["unsubscribed"].get(candidate.contact_id))
        if opted_out:
            return skip("unsubscribed from all marketing", self.name)
        if topic is not None and topic["id"] in state["opted"].get(candidate.contact_id, ()):
            return skip(f"unsubscribed from topic {topic['name']}", self.name)
        return SEND
