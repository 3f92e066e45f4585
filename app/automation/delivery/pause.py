"""Automatic pause of a firm's sending, and its resume (docs/SENDING.md
"Automatic pause").

After each hard bounce or complaint is recorded, :func:`check_rate` looks
at the firm's last ``window`` e-mails handed over: when more than
``percent`` of them bounced hard or drew a complaint, sending pauses. The
pause gate then holds every due message (at its step, or pending in the
outbox) and nothing is lost; admins get an internal notification and a
banner on every page. :func:`resume` lifts it and wakes what was held, so
it goes at once, each message once (the held step or row is the same).
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, and_, func, select, update

from app.automation.delivery import pacing
from app.clock import now
from app.models import (
    ContactFlowState,
    Firm,
    Notification,
    OutboxMessage,
    Suppression,
    User,
    WorkflowExecution,
)

log = logging.getLogger(__name__)

GATE = "pause"
# A sample smaller than this many e-mails never pauses (three bounces of
# the first five are not yet a rate).
MIN_SAMPLE = 10

_firms = Firm.__table__
_outbox = OutboxMessage.__table__
_suppressions = Suppression.__table__
_executions = WorkflowExecution.__table__
_states = ContactFlowState.__table__
_users = User.__table__
_notifications = Notification.__table__


def _firm_settings(conn: Connection, firm_id: int, *, lock: bool) -> dict:
    stmt = select(_firms.c.settings).where(_firms.c.id == firm_id)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return dict(conn.execute(stmt).scalar_one_or_none() or {})


def _write(conn: Connection, firm_id: int, firm_settings: dict, sending: dict) -> None:
    stored = dict(firm_settings.get("sending") or {})
    stored.update(sending)
    conn.execute(
        update(_firms)
        .where(_firms.c.id == firm_id)
        .values(settings={**firm_settings, "sending": stored})
    )


def bad_rate(conn: Connection, firm_id: int, window: int) -> tuple[int, int]:
    """(hard bounces and complaints, e-mails) among the firm's last
    ``window`` e-mails handed over."""
    last = (
        select(_outbox.c.id)
        .where(
            _outbox.c.firm_id == firm_id,
            _outbox.c.channel == "email",
            _outbox.c.status.in_(("sent", "failed")),
        )
        .order_by(_outbox.c.id.desc())
        .limit(window)
        .subquery()
    )
    total = conn.execute(select(func.count()).select_from(last)).scalar_one()
    bad = conn.execute(
        select(func.count(func.distinct(_suppressions.c.outbox_id))).where(
            _suppressions.c.firm_id == firm_id,
            _suppressions.c.reason.in_(("hard_bounce", "complaint")),
            _suppressions.c.outbox_id.in_(select(last.c.id)),
        )
    ).scalar_one()
    return int(bad), int(total)


def check_rate(conn: Connection, firm_id: int) -> bool:
    """Pause the firm when its bounce/complaint rate passes its threshold;
    True when it paused now. The caller commits."""
    settings = pacing.load(conn, [firm_id]).get(firm_id)
    rule = settings and settings.get("pause_on_bounce_rate")
    if not rule or settings.get("paused"):
        return False
    bad, total = bad_rate(conn, firm_id, int(rule["window"]))
    if total < min(MIN_SAMPLE, int(rule["window"])) or bad * 100 <= rule["percent"] * total:
        return False
    reason = (
        f"{bad} of the last {total} e-mails bounced hard or drew a complaint "
        f"({bad * 100 / total:.1f}%, above {rule['percent']:g}%)"
    )
    pause(conn, firm_id, reason)
    return True


def pause(conn: Connection, firm_id: int, reason: str, *, by: str = "system") -> None:
    firm_settings = _firm_settings(conn, firm_id, lock=True)
    if pacing.settings_of(firm_settings)["paused"]:
        return
    moment = now()
    _write(
        conn,
        firm_id,
        firm_settings,
        {"paused": True, "paused_reason": reason, "paused_at": moment.isoformat()},
    )
    admins = conn.execute(
        select(_users.c.id).where(_users.c.firm_id == firm_id, _users.c.role == "admin")
    ).scalars()
    message = (
        f"Sending is paused: {reason}. Due messages are held, none is lost. "
        "Check the bounces, then resume on the Sending page."
    )
    rows = [
        {"firm_id": firm_id, "user_id": uid, "message": message, "created_at": moment}
        for uid in admins
    ]
    if rows:
        conn.execute(_notifications.insert(), rows)
    log.warning("firm %s: sending paused: %s", firm_id, reason, extra={"firm_id": firm_id})


def resume(conn: Connection, firm_id: int) -> dict:
    """Lift the pause and wake what it held: held steps run now, held
    outbox rows are due now. Returns how many of each. The caller commits."""
    firm_settings = _firm_settings(conn, firm_id, lock=True)
    _write(
        conn, firm_id, firm_settings, {"paused": False, "paused_reason": None, "paused_at": None}
    )
    moment = now()
    gate = _states.c.action_result["gate"].as_string()
    held = select(_states.c.execution_id).where(
        _states.c.firm_id == firm_id, _states.c.action_status == "deferred", gate == GATE
    )
    steps = conn.execute(
        update(_executions)
        .where(
            _executions.c.firm_id == firm_id,
            _executions.c.status == "waiting",
            _executions.c.wait_reason == "held",
            _executions.c.wake_at > moment,
            _executions.c.id.in_(held),
        )
        .values(wake_at=moment)
    ).rowcount
    held_gate = _outbox.c.response["held"]["gate"].as_string()
    rows = conn.execute(
        update(_outbox)
        .where(
            and_(
                _outbox.c.firm_id == firm_id,
                _outbox.c.status == "pending",
                _outbox.c.next_attempt_at > moment,
                held_gate == GATE,
            )
        )
        .values(next_attempt_at=moment)
    ).rowcount
    return {"steps": int(steps or 0), "messages": int(rows or 0)}
