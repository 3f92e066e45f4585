"""The third gate: a message goes out only inside its send window.

The window is the step's own ``send_window`` or, when the step sets none,
its workflow's (``null`` on the step: none). The engine resolves it and puts
it on the candidate (``extra["send_window"]``); this gate reads it in the
contact's zone (falling back to the firm's) or the window's named zone, and
outside it defers the message to the next opening (delivery/windows.py).
It runs at the step only: a message written inside its window may wait for
a retry past its end, and is not held again for it.

One query per batch: the time zones of the batch's firms; the opening is
computed once per window, zone and moment of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from app.automation.delivery.gates import consent  # noqa: F401  (the gate before)
from app.automation.delivery.gates.chain import SEND, Candidate, Gate, Verdict, defer, register
from app.automation.delivery.windows import next_opening, zone_for
from app.models import Firm

REASON = "outside send window"
_firms = Firm.__table__


def firm_zones(conn: Connection, firm_ids) -> dict[int, str | None]:
    ids = sorted(set(firm_ids))
    if not ids:
        return {}
    stmt = select(_firms.c.id, _firms.c.settings).where(_firms.c.id.in_(ids))
    return {row.id: (row.settings or {}).get("timezone") for row in conn.execute(stmt)}


@register
class SendWindowGate(Gate):
    name = "send_window"
    stages = frozenset({"step"})

    def prepare(self, conn: Connection, candidates: Sequence[Candidate]) -> dict:
        return {
            "zones": None,
            "conn": conn,
            "firms": {c.firm_id for c in candidates},
            "resolved": {},
            "openings": {},
        }

    def check(self, candidate: Candidate, state: dict) -> Verdict:
        window = candidate.extra.get("send_window")
        if window is None:
            return SEND
        if state["zones"] is None:  # read only when some message has a window
            state["zones"] = firm_zones(state["conn"], state["firms"] | {candidate.firm_id})
        contact_zone = (candidate.contact or {}).get("timezone")
        firm_zone = state["zones"].get(candidate.firm_id)
        # A batch shares one moment, so the opening is worked out once per
        # window and zone, not once per message.
        key = (window.timezone, contact_zone, firm_zone)
        zone = state["resolved"].get(key)
        if zone is None:
            zone = state["resolved"][key] = zone_for(window, contact_zone, firm_zone)
        key = (window, zone.key, candidate.moment)
        if key not in state["openings"]:
            state["openings"][key] = next_opening(window, candidate.moment, zone)
        opening = state["openings"][key]
        if opening is None:
            return SEND
        return defer(opening, REASON, self.name)
