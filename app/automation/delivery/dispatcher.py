"""Send due outbox rows, each exactly once in effect.

A dispatcher run claims a batch of due ``pending`` rows in one statement,
then for each row:

1. hands the message over (SMTP ``250``, an HTTP 2xx) -- e-mails of the
   run share one SMTP connection;
2. records ``sent`` in one autocommitted UPDATE at once, before the next
   message goes.

Claims: on PostgreSQL the batch is picked ``FOR UPDATE SKIP LOCKED`` and
each picked row is held by a session-level advisory lock of the
dispatcher's connection (the row locks end with the claim statement, so
recording a row does not wait on them; the advisory lock is what keeps
other dispatchers off the row until it is recorded). A dispatcher that dies
takes its connection and so its advisory locks with it: its unsent rows are
due again at once. On SQLite, where one in-process runner drains the
outbox, each row is claimed by a conditional UPDATE that pushes
``next_attempt_at`` out by a lease.

A worker that dies between 1 and 2 leaves its row pending: that message is
sent again, with the same Message-ID / Idempotency-Key, and that is the only
repeat possible -- one per death, because every other message was recorded
right after its own hand-over, and rows never handed over were never sent.

Right before the hand-over the batch passes the send gates once more
(``handover_checks``): a row whose address was suppressed, or whose contact
opted out, while it waited is recorded ``skipped`` and never sent.

A failed attempt counts, and the row is retried after
``retry_backoff_seconds * 2**(attempts-1)``; after ``max_attempts`` it is
``failed``. Rows that reach ``sent`` or ``failed`` wake their executions
(the engine reads the row to decide the step's outcome).
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

import httpx
from flask import current_app
from psycopg import RawCursor
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Row, bindparam, select, text, update

from app.automation.delivery import handover_checks, sending_domains
from app.automation.delivery.errors import SendFailed, redact
from app.automation.delivery.sms import send_sms
from app.automation.delivery.smtp import SmtpSender, compose
from app.automation.delivery.webhook import Clients, send_webhook
from app.automation.engine.wakes import wake
from app.automation.operations import metrics
from app.automation.operations.logs import log_context
from app.clock import now
from app.extensions import db
from app.models import Firm, OutboxMessage

log = logging.getLogger(__name__)

USER_AGENT = "automation-webhooks/1.0"
# SQLite claim lease: how long a claimed row is hidden from other runs.
CLAIM_LEASE_SECONDS = 300
MAX_BACKOFF_SECONDS = 7 * 24 * 3600
WAKE_EVERY = 100

outbox = OutboxMessage.__table__
_UNKNOWN = object()


class Transports:
    """The connections of one dispatcher run, opened on first use and
    reused for every message of the run."""

    def __init__(self, config):
        self.config = config
        self._smtp: SmtpSender | None = None
        self._http: httpx.Client | None = None
        self._webhooks: Clients | None = None
        self._secrets: dict[int, list[str]] = {}
        self._domains: dict[int, list] = {}
        self._signers: dict[tuple[int, str], object] = {}
        self._link_domains: dict[int, list[str]] = {}

    @property
    def smtp(self) -> SmtpSender:
        if self._smtp is None:
            self._smtp = SmtpSender.from_config(self.config)
        return self._smtp

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            # The SMS gateway, as configured: no environment proxies.
            self._http = httpx.Client(trust_env=False, follow_redirects=False)
        return self._http

    @property
    def webhooks(self) -> Clients:
        if self._webhooks is None:
            self._webhooks = Clients(self.config.get("WEBHOOK_CA_BUNDLE"))
        return self._webhooks

    def webhook_secrets(self, firm_id: int) -> list[str]:
        """The firm's signing secrets (two for a day after a rotation)."""
        if firm_id not in self._secrets:
            firm = db.session.get(Firm, firm_id)
            self._secrets[firm_id] = firm.signing_secrets() if firm else [""]
            db.session.rollback()  # a read: do not sit idle in a transaction
        return self._secrets[firm_id]

    def dkim(self, firm_id: int, from_address: str):
        """The DKIM signer for this firm's sending domain of ``from_address``
        (None: no key for it). The firm's domains are read once a run, and
        the signer of each sender found once (a batch has few senders)."""
        found = self._signers.get((firm_id, from_address), _UNKNOWN)
        if found is not _UNKNOWN:
            return found
        if firm_id not in self._domains:
            self._domains[firm_id] = sending_domains.keys_of(firm_id)
            db.session.rollback()  # a read: do not sit idle in a transaction
        found = sending_domains.signer_for(self._domains[firm_id], from_address)
        self._signers[(firm_id, from_address)] = found
        return found

    def link_domains(self, firm_id: int) -> list[str]:
        """The firm's sending domains, whose links are tracked even when a
        merge field wrote them (tracking.LinkPolicy); read once a run."""
        if firm_id not in self._link_domains:
            self._link_domains[firm_id] = sending_domains.domains_of(firm_id)
            db.session.rollback()  # a read: do not sit idle in a transaction
        return self._link_domains[firm_id]

    def send(self, row) -> dict:
        """Hand one outbox row (a Row of the table) to its transport."""
        if row.channel == "email":
            if not self.config.get("SMTP_HOST"):
                raise SendFailed("no SMTP server configured (SMTP_HOST)")
            message = compose(
                row, self.config.get("UNSUBSCRIBE_MAILTO"), self.link_domains(row.firm_id)
            )
            sign = self.dkim(row.firm_id, row.from_address)
            if sign is not None:
                message = sign(message)
            return self.smtp.send(message, row.from_address, row.to_address)
        if row.channel == "sms":
            gateway = self.config.get("SMS_GATEWAY_URL")
            if not gateway:
                raise SendFailed("no SMS gateway configured (SMS_GATEWAY_URL)")
            return send_sms(self.http, row, gateway, user_agent=USER_AGENT)
        if row.channel == "webhook":
            return send_webhook(
                self.webhooks,
                row,
                self.webhook_secrets(row.firm_id),
                allow_private=bool(self.config.get("WEBHOOK_ALLOW_PRIVATE")),
                user_agent=USER_AGENT,
            )
        raise SendFailed(f"unknown channel {row.channel!r}", permanent=True)

    def close(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
        if self._http is not None:
            self._http.close()
        if self._webhooks is not None:
            self._webhooks.close()


def _is_postgres() -> bool:
    return db.engine.dialect.name == "postgresql"


def _due():
    return (outbox.c.status == "pending", outbox.c.next_attempt_at <= bindparam("moment"))


# Built once: the loop runs them thousands of times a second.
_DUE_IDS = (
    select(outbox.c.id)
    .where(*_due())
    .order_by(outbox.c.next_attempt_at, outbox.c.id)
    .limit(bindparam("limit"))
)
# The claim and the read of the claimed row in one statement.
_LEASE = (
    update(outbox)
    .where(outbox.c.id == bindparam("row_id"), *_due())
    .values(next_attempt_at=bindparam("lease"))
    .returning(*outbox.c)
)
# The SET clause comes from the parameters given (the outcome's columns).
_RECORD = update(outbox).where(outbox.c.id == bindparam("row_id"))

# Advisory lock keys of outbox rows: this offset plus the row id, far from
# any other advisory key the app might take.
ADVISORY_BASE = 0x0B0C_0000_0000_0000
_columns = ", ".join(f"o.{column.name}" for column in outbox.columns)
# One statement: pick due rows nobody holds, take an advisory lock on each
# (MATERIALIZED: the lock function runs on the picked rows only), return
# them. A row whose advisory lock another dispatcher holds (picked by it,
# not recorded yet) is left out. The rows are read by ``id = ANY(ARRAY(...))``
# (a primary-key probe per id), not a join, whose plan can turn into a scan
# of the whole outbox per row on stale statistics after a bulk insert.
_CLAIM_BATCH = text(
    f"""
    WITH due AS MATERIALIZED (
        SELECT id FROM {outbox.name}
        WHERE status = 'pending' AND next_attempt_at <= :moment
        ORDER BY next_attempt_at, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), mine AS MATERIALIZED (
        SELECT id FROM due WHERE pg_try_advisory_lock({ADVISORY_BASE} + id)
    )
    SELECT {_columns} FROM {outbox.name} o
    WHERE o.id = ANY(ARRAY(SELECT id FROM mine))
    ORDER BY o.next_attempt_at, o.id
    """
)
# In PostgreSQL's own $n placeholders, for a RawCursor: psycopg then has
# no query to rewrite per execute.
_RECORD_SQL = (
    f"UPDATE {outbox.name} SET status = $1, attempts = $2, sent_at = $3, "
    "next_attempt_at = $4, last_error = $5, response = $6 WHERE id = $7"
)
_UNLOCK = text(
    f"SELECT count(pg_advisory_unlock({ADVISORY_BASE} + id)) FROM unnest(CAST(:ids AS bigint[])) AS id"
)


class _PostgresClaims:
    """The batch is claimed in one statement on an autocommit connection;
    each row stays claimed by its advisory lock until it is recorded (the
    locks are released together when the run ends, or with the connection
    if the process dies)."""

    def __init__(self, conn: Connection, limit: int):
        self.conn = conn
        self.rows = list(conn.execute(_CLAIM_BATCH, {"moment": now(), "limit": limit}))
        self.ids = [row.id for row in self.rows]
        self.gates = handover_checks.DispatchGates(conn, self.rows)
        self.rows.reverse()
        self._cursor = RawCursor(conn.connection.driver_connection)

    def next(self) -> Row | None:
        return self.rows.pop() if self.rows else None

    def record(self, row: Row, values: dict) -> None:
        # The statement run once per message: the driver's own execute
        # (prepared after a few runs) costs about half the CPU of a Core
        # UPDATE, and on an autocommit connection it is one round trip;
        # one raw cursor serves the whole batch (a third less CPU again).
        self._cursor.execute(
            _RECORD_SQL,
            (
                values.get("status", row.status),
                values["attempts"],
                values.get("sent_at", row.sent_at),
                values["next_attempt_at"],
                values["last_error"],
                Jsonb(values["response"]),
                row.id,
            ),
        )

    def release(self) -> None:
        self._cursor.close()
        ids, self.ids = self.ids, []
        if not ids:
            return
        try:
            self.conn.execute(_UNLOCK, {"ids": ids})
        except Exception:
            # A connection that may still hold our locks must not go back to
            # the pool: closing it is what releases them.
            log.exception("outbox: could not release claims; closing the connection")
            self.conn.invalidate()


class _SqliteClaims:
    """SQLite has no row locks: the due ids are read once, then each is
    claimed by a conditional UPDATE that hides it for a lease (exactly one
    claimer changes the row) and returns it. The ids are shuffled so that concurrent runs
    mostly try different rows first."""

    def __init__(self, conn: Connection, limit: int):
        self.conn = conn
        self.ids = list(conn.scalars(_DUE_IDS, {"moment": now(), "limit": limit}))
        random.shuffle(self.ids)
        # The gates see the rows in the order they are tried (popped from
        # the end): the rate limit reserves slots in that order.
        order = {outbox_id: i for i, outbox_id in enumerate(reversed(self.ids))}
        rows = sorted(handover_checks.preview(conn, self.ids), key=lambda r: order[r.id])
        self.gates = handover_checks.DispatchGates(conn, rows)
        conn.rollback()

    def release(self) -> None:
        pass

    def record(self, row: Row, values: dict) -> None:
        self.conn.execute(_RECORD, {"row_id": row.id, **values})
        self.conn.commit()

    def next(self) -> Row | None:
        while self.ids:
            outbox_id = self.ids.pop()
            moment = now()
            lease = moment + timedelta(seconds=CLAIM_LEASE_SECONDS)
            row = self.conn.execute(
                _LEASE, {"row_id": outbox_id, "moment": moment, "lease": lease}
            ).first()
            self.conn.commit()
            if row is not None:
                return row
        return None


def backoff(retry_backoff_seconds: float, attempts: int) -> timedelta:
    """The wait before the next try after ``attempts`` failed ones."""
    seconds = float(retry_backoff_seconds or 0) * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, MAX_BACKOFF_SECONDS))


def _outcome(row: Row, transports: Transports) -> dict:
    """Send one claimed row; the column values that record what happened."""
    attempts = row.attempts + 1
    try:
        result = transports.send(row)
    except SendFailed as exc:
        failure = exc
    except Exception as exc:  # a bug or an unexpected library error
        log.exception("outbox %s: unexpected error while sending", row.id)
        failure = SendFailed(f"internal error: {type(exc).__name__}")
    else:
        return {
            "status": "sent",
            "attempts": attempts,
            "sent_at": now(),
            "next_attempt_at": None,
            "last_error": None,
            "response": result,
        }
    secrets = [transports.config.get("SMTP_PASSWORD"), transports.config.get("EMAIL_EVENTS_SECRET")]
    if row.channel == "webhook":
        secrets.extend(transports.webhook_secrets(row.firm_id))
    username = transports.config.get("SMTP_USERNAME")
    response = redact(failure.response or {}, secrets, username)
    permanent = failure.permanent
    bounce = handover_checks.bounce_of(response)
    if bounce is not None:
        # A soft bounce is retried even when its basic code says 5xx
        # (552 5.2.2 mailbox full); a hard one or a block never is.
        response["bounce"] = bounce.detail()
        permanent = bounce.kind != "soft"
    values = {
        "attempts": attempts,
        "last_error": redact(str(failure), secrets, username)[:2000],
        "response": response,
    }
    if permanent or attempts >= row.max_attempts:
        values.update(status="failed", next_attempt_at=None)
    else:
        values.update(next_attempt_at=now() + backoff(row.retry_backoff_seconds, attempts))
    return values


def send_and_record(claims, row: Row, transports: Transports) -> str:
    """Send one claimed row and commit its outcome at once; returns the
    row's new status."""
    verdict = claims.gates.verdict(row)
    values = (
        _outcome(row, transports) if verdict is None else handover_checks.values_for(row, verdict)
    )
    claims.record(row, values)
    if "bounce" in values["response"]:
        handover_checks.after_failure(claims.conn, row, values)
    status = values.get("status", row.status)
    log.debug("outbox %s -> %s", row.id, status)
    if status != "pending":
        metrics.record_delivery(row.channel, status)
    else:
        metrics.record_delivery(row.channel, "retry" if verdict is None else "deferred")
    return status


def _wake(execution_ids: list[int]) -> None:
    if not execution_ids:
        return
    wake(execution_ids)


def deliver_due(limit: int = 200) -> int:
    """Send up to ``limit`` due messages; returns how many were attempted
    (sent, failed, or rescheduled for a retry).

    The loop runs on one connection of its own (a claim per batch, then a
    send and a one-statement record per message: no pool checkout in
    between); this is system work across firms, so it uses the table
    directly."""
    transports: Transports | None = None
    handled = 0
    finished: list[int] = []
    with db.engine.connect() as conn:
        if _is_postgres():
            # Autocommit: the claim and each record are one round trip.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            claims = _PostgresClaims(conn, limit)
        else:
            claims = _SqliteClaims(conn, limit)
        try:
            while handled < limit:
                row = claims.next()
                if row is None:
                    break
                if transports is None:
                    transports = Transports(current_app.config)
                with log_context(
                    firm_id=row.firm_id, workflow_id=row.workflow_id, execution_id=row.execution_id
                ):
                    status = send_and_record(claims, row, transports)
                handled += 1
                if status in ("sent", "failed", "skipped") and row.execution_id:
                    finished.append(row.execution_id)
                if len(finished) >= WAKE_EVERY:
                    _wake(finished)
                    finished = []
        finally:
            try:
                conn.rollback()
                claims.release()
            finally:
                if transports is not None:
                    transports.close()
                db.session.rollback()
                _wake(finished)
    return handled
