"""Sending REST hook deliveries (docs/CONTRACT.md "REST hooks").

A run claims due deliveries (``SELECT ... FOR UPDATE SKIP LOCKED`` on
PostgreSQL, a conditional UPDATE on SQLite, docs/ARCHITECTURE.md rule 2):
the claim moves their ``next_attempt_at`` a lease ahead, so a second run
skips them and a run that dies leaves them due again when the lease runs
out (the sweeper kicks this job while any is due). Each is then POSTed
through the outgoing-webhook client (``delivery/webhook.py``: the
private-address guard, the pinned address, ``WEBHOOK_CA_BUNDLE``) and
signed as Standard Webhooks with the subscription's secret
(``delivery/signing.py``), under a ``webhook-id`` that is the same on every
attempt; the outcome is committed at once.

A 2xx answer is delivered; a 410 ends the subscription (recorded on it);
anything else (a 5xx, a timeout, a refused connection) is retried after
:data:`BACKOFF`, and after the last one the delivery is dead.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import select, update

from app.automation.delivery.errors import SendFailed, redact
from app.automation.delivery.signing import message_key
from app.automation.delivery.webhook import Clients, encode_body, send_webhook
from app.automation.hooks import payloads, subscriptions
from app.clock import now
from app.extensions import db
from app.models import HookDelivery
from app.queue import clear_kick
from app.tenancy import firm_context

log = logging.getLogger(__name__)

USER_AGENT = "automation-resthooks/1.0"
# Waits before the 2nd ... 6th attempt; the 6th failure is the last.
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=12),
)
TIMEOUT_SECONDS = 10.0
# A claimed delivery is hidden this long; longer than one send can take.
LEASE_SECONDS = 120
ANSWER_CHARS = 500
JOB_BUDGET_SECONDS = 60

table = HookDelivery.__table__


def webhook_id(delivery_id: int) -> str:
    """The delivery's ``webhook-id`` (and ``Idempotency-Key``): the same on
    every attempt, unguessable, unique to this installation."""
    return "msg_" + message_key("rest-hook", delivery_id)


def _due(moment):
    return (table.c.status == "pending", table.c.next_attempt_at <= moment)


def claim(limit: int) -> list[int]:
    """Claim up to ``limit`` due deliveries; commits."""
    moment = now()
    picked = (
        select(table.c.id)
        .where(*_due(moment))
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(table)
        .where(table.c.id.in_(picked.scalar_subquery()), *_due(moment))
        .values(next_attempt_at=moment + timedelta(seconds=LEASE_SECONDS))
        .returning(table.c.id)
    )
    try:
        ids = sorted(db.session.connection().execute(stmt).scalars())
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ids


def any_due() -> bool:
    """Whether a delivery is due (read-only; the sweeper asks)."""
    stmt = select(table.c.id).where(*_due(now())).limit(1)
    try:
        return db.session.connection().execute(stmt).first() is not None
    finally:
        db.session.rollback()


def _firm_of(delivery_id: int) -> int | None:
    stmt = select(table.c.firm_id).where(table.c.id == delivery_id)
    return db.session.connection().execute(stmt).scalar()


def send_one(clients: Clients, delivery_id: int) -> str:
    """Send one claimed delivery and record the outcome; returns its status."""
    firm_id = _firm_of(delivery_id)
    if firm_id is None:
        return "gone"
    with firm_context(firm_id):
        row = db.session.get(HookDelivery, delivery_id)
        if row is None:  # its subscription was removed meanwhile
            db.session.rollback()
            return "gone"
        subscription = row.subscription
        if not subscription.active:
            row.status, row.next_attempt_at = "gone", None
            db.session.commit()
            return row.status
        if row.payload is None:
            row.payload = encode_body(payloads.body_of(row)).decode()
        message = SimpleNamespace(
            to_address=subscription.target_url,
            message_id=webhook_id(row.id),
            # Parsed back in the stored order: the same bytes every attempt.
            payload={
                "method": "POST",
                "body": json.loads(row.payload),
                "timeout_seconds": TIMEOUT_SECONDS,
            },
        )
        config = current_app.config
        moment = now()
        row.attempts += 1
        row.last_attempt_at = moment
        try:
            result = send_webhook(
                clients,
                message,
                subscription.secret,
                allow_private=bool(config.get("WEBHOOK_ALLOW_PRIVATE")),
                user_agent=USER_AGENT,
            )
        except SendFailed as exc:
            _failed(row, exc, subscription.secret)
        else:
            row.status, row.next_attempt_at, row.delivered_at = "delivered", None, now()
            row.status_code = result.get("status_code")
            row.answer = redact(result.get("body") or "", [subscription.secret])[:ANSWER_CHARS]
            row.last_error = None
        status, subscription_id, code = row.status, subscription.id, row.status_code
        db.session.commit()
        if code == 410:
            subscriptions.end(
                subscription_id, f"the receiver answered 410 Gone at {moment:%Y-%m-%d %H:%M} UTC"
            )
        return status


def _failed(row: HookDelivery, exc: SendFailed, secret: str) -> None:
    response = exc.response or {}
    row.status_code = response.get("status_code")
    row.answer = redact(response.get("body") or "", [secret])[:ANSWER_CHARS] or None
    row.last_error = redact(str(exc), [secret])[:2000]
    if row.status_code == 410:
        row.status, row.next_attempt_at = "gone", None
    elif exc.permanent or row.attempts > len(BACKOFF):
        row.status, row.next_attempt_at = "dead", None
    else:
        row.next_attempt_at = now() + BACKOFF[row.attempts - 1]


def deliver_due(limit: int = 50) -> int:
    """Claim and send up to ``limit`` due deliveries; returns how many were
    attempted. One death between a receiver's answer and its record
    repeats that one delivery, under the same ``webhook-id``."""
    ids = claim(limit)
    if not ids:
        return 0
    clients = Clients(current_app.config.get("WEBHOOK_CA_BUNDLE"))
    try:
        for delivery_id in ids:
            try:
                send_one(clients, delivery_id)
            except Exception:
                # Left claimed: due again when its lease runs out.
                log.exception("hook delivery %s failed to send", delivery_id)
                db.session.rollback()
    finally:
        clients.close()
    return len(ids)


def run_hook_job() -> int:
    """The ``hooks`` kick's job (delivery queue): send what is due."""
    clear_kick("hooks")
    sent = 0
    started = time.monotonic()
    while time.monotonic() - started < JOB_BUDGET_SECONDS:
        count = deliver_due()
        sent += count
        if not count:
            break
    return sent
