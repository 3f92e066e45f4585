"""The first gate: an address on the firm's suppression list gets nothing.

It applies to every topic, transactional ones too, at the engine's step
and again right before the hand-over (an address may be suppressed while
its message waits for a retry). One query per batch: every suppressed
address among the batch's recipients, for their firms.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, select

from app.automation.delivery.gates.chain import SEND, Candidate, Gate, Verdict, register, skip
from app.models import Suppression

REASON_LABELS = {
    "hard_bounce": "hard bounce",
    "complaint": "spam complaint",
    "manual": "added by hand",
    "unsubscribe": "asked never to be mailed",
    "soft_bounce": "repeated soft bounces",
}

_table = Suppression.__table__
# Above this many addresses the IN list is sent in chunks (SQLite's
# parameter limit; PostgreSQL plans a long IN list well).
CHUNK = 900


def describe(reason: str, created_at: datetime | None, detail: dict | None, note: str = "") -> str:
    """The words a marketer reads on a skipped step:
    "suppressed: hard bounce on 1 Dec, 550 User unknown"."""
    text = f"suppressed: {REASON_LABELS.get(reason, reason.replace('_', ' '))}"
    if created_at is not None:
        text += f" on {created_at.day} {created_at:%b %Y}"
    answer = answer_text(detail or {})
    if answer:
        text += f", {answer}"
    elif note:
        text += f" ({note[:120]})"
    return text


def answer_text(detail: dict) -> str:
    """The server's or provider's answer in one short line ("550 User unknown")."""
    code = detail.get("code")
    text = " ".join(str(detail.get("text") or "").split())[:160]
    return f"{code} {text}".strip() if code else text


@register
class SuppressionGate(Gate):
    name = "suppression"

    def prepare(self, conn: Connection, candidates: Sequence[Candidate]) -> dict:
        keys = sorted({c.key for c in candidates if c.key})
        firms = {c.firm_id for c in candidates}
        found: dict[tuple[int, str, str], str] = {}
        for start in range(0, len(keys), CHUNK):
            stmt = select(
                _table.c.firm_id,
                _table.c.channel,
                _table.c.address,
                _table.c.reason,
                _table.c.created_at,
                _table.c.detail,
                _table.c.note,
            ).where(_table.c.address.in_(keys[start : start + CHUNK]))
            for row in conn.execute(stmt):
                if row.firm_id in firms:
                    found[(row.firm_id, row.channel, row.address)] = describe(
                        row.reason, row.created_at, row.detail, row.note
                    )
        return found

    def check(self, candidate: Candidate, state: dict) -> Verdict:
        reason = state.get((candidate.firm_id, candidate.channel, candidate.key))
        return skip(reason, self.name) if reason else SEND
