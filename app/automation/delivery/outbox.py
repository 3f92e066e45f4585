"""Render a message step into an outbox row.

The engine calls :func:`build_outbox_row` while it walks a batch and inserts
the rows set-based (``ON CONFLICT (execution_id, node_id, visit) DO
NOTHING``) in the transaction that records the step, so a re-run of the
step finds the row instead of making a second message. Everything that must
stay identical across retries is decided here, once: the rendered content,
the recipient, and the ``message_id`` (e-mail ``Message-ID``, webhook
``webhook-id`` / ``Idempotency-Key``, SMS idempotency key), derived from
(execution, node, visit).

Statuses (see ``app.models.delivery``): ``pending`` (to send), ``recorded``
(no transport configured: kept and shown, never silently dropped),
``skipped`` (a gate said no, or there is no address; the reason is in
``response``: docs/SENDING.md),
``test`` (a test run: nothing leaves).

A template that cannot be rendered raises
:class:`~app.automation.templating.render.TemplateError`: the step fails with that
message (retrying would render the same thing again).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import update

from app.automation.delivery import signing
from app.automation.delivery.gates import Candidate, GateRun, Verdict
from app.automation.delivery.tracking import literal_links
from app.automation.engine.context import render_context
from app.automation.nodes.registry import UnknownNodeType, get_node_type
from app.automation.templating.render import TemplateError, render_html, render_text
from app.clock import now
from app.extensions import db
from app.models import OutboxMessage


def channel_of(node_type: str) -> str | None:
    """The outbox channel of a message step's type (its ``channel``), or None."""
    try:
        return get_node_type(node_type).channel
    except UnknownNodeType:
        return None


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """Read ``name`` from a dict, a Row mapping or an object (the engine
    passes plain dicts; other callers may pass ORM rows)."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    if hasattr(obj, "_mapping"):
        return obj._mapping.get(name, default)
    return getattr(obj, name, default)


def _domain(address: str) -> str:
    domain = address.rpartition("@")[2].strip(" >") if "@" in address else ""
    if not domain:
        domain = current_app.config["BASE_URL"].split("://", 1)[-1].split("/", 1)[0]
    return domain.split(":", 1)[0] or "localhost"


def message_key(firm_id: int, execution_id: Any, node_id: str, visit: int) -> str:
    """A stable, unguessable key for one step's message: the same on every
    retry and every re-run of the step, different for every other step and
    on every other installation (keyed with SECRET_KEY, ``signing``). It is
    stored on the row and never recomputed, so rows written before it was
    keyed keep the key they were sent with."""
    return signing.message_key(firm_id, execution_id, node_id, visit)


def email_message_id(key: str, from_address: str) -> str:
    return f"<{key}@{_domain(from_address)}>"


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _render_strings(value: Any, context: dict) -> Any:
    """A webhook payload with every string value rendered (keys are kept)."""
    if isinstance(value, str):
        return render_text(value, context)
    if isinstance(value, Mapping):
        return {k: _render_strings(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_strings(v, context) for v in value]
    return value


def default_webhook_payload(context: dict) -> dict:
    """Contact, workflow and execution summary (docs/CONTRACT.md webhook default)."""
    return {
        "contact": _json_safe(context.get("contact") or {}),
        "workflow": _json_safe(context.get("workflow") or {}),
        "execution": _json_safe(context.get("execution") or {}),
    }


def _config(node: Any):
    parsed = _field(node, "config")
    if parsed is not None and hasattr(parsed, "model_dump"):
        return parsed
    node_type = _field(node, "node_type")
    return get_node_type(node_type).parse_config(_field(node, "configuration") or {})


def _default_context(contact: Any, execution: Any) -> dict:
    return render_context(contact, None, execution)


def build_outbox_row(
    *,
    firm_id: int,
    execution: Any,
    node: Any,
    visit: int,
    context: dict | None,
    contact: Any,
    verdict: Verdict | None = None,
    topic: dict | None = None,
) -> dict:
    """The ``OutboxMessage`` column values for a send_email, send_sms or
    webhook step. ``execution``, ``node`` and ``contact`` may be dicts or
    ORM objects; ``context`` is the template context (plain dicts).

    ``verdict`` is the gate chain's answer for this message (the engine
    asks for a whole batch at once); without one the chain is asked here.
    A skipped message is recorded with its reason and not rendered.
    ``topic`` is the topic the chain resolved (the step's, or the firm's
    default marketing topic)."""
    node_type = _field(node, "node_type")
    channel = channel_of(node_type)
    if channel is None:
        raise ValueError(f"node type {node_type!r} does not send a message")
    config = _config(node)
    if context is None:
        context = _default_context(contact, execution)
    node_id = _field(node, "node_id")
    execution_id = _field(execution, "id")
    key = message_key(firm_id, execution_id, node_id, visit)
    moment = now()
    row: dict[str, Any] = {
        "firm_id": firm_id,
        "execution_id": execution_id,
        "workflow_id": _field(execution, "workflow_id"),
        "contact_id": _field(contact, "id"),
        "node_id": node_id,
        "visit": visit,
        "channel": channel,
        "status": "pending",
        "to_address": "",
        "from_address": "",
        "subject": "",
        "body_text": "",
        "body_html": "",
        "payload": {},
        "topic_id": None,
        "message_id": key,
        "attempts": 0,
        "max_attempts": config.max_attempts,
        "retry_backoff_seconds": float(config.retry_backoff_seconds),
        "next_attempt_at": moment,
        "last_error": None,
        "response": {},
        "sent_at": None,
        "created_at": moment,
    }
    if verdict is None:
        verdict, topic = gate_single(firm_id, channel, execution, node_id, contact, config)
    if topic is not None:
        row["topic_id"] = topic["id"]
        row["payload"] = {"topic": {k: topic[k] for k in ("id", "name", "kind")}}
    if verdict.action == "skip":
        _ADDRESSES[channel](row, config, contact)
        row.update(status="skipped", next_attempt_at=None, response=verdict.as_result())
        return row
    if verdict.action == "defer":
        raise ValueError("a deferred message is not written yet (docs/SENDING.md)")
    skip_reason = _BUILDERS[channel](row, config, context, contact)
    if skip_reason:
        row.update(status="skipped", next_attempt_at=None, response={"reason": skip_reason})
    elif _field(execution, "test_mode", False):
        row.update(status="test", next_attempt_at=None)
    elif not _transport_configured(channel):
        row.update(status="recorded", next_attempt_at=None)
    return row


def recipient(channel: str, contact: Any, config: Any = None) -> str:
    if channel == "email":
        return (_field(contact, "email") or "").strip()
    if channel == "sms":
        return (_field(contact, "phone") or "").strip()
    return getattr(config, "url", "") or ""


def candidate_for(firm_id, channel, execution, node_id, contact, config) -> Candidate:
    """The gate chain's view of one message about to be written."""
    return Candidate(
        firm_id=firm_id,
        channel=channel,
        address=recipient(channel, contact, config),
        contact_id=_field(contact, "id"),
        topic_id=getattr(config, "topic", None),
        workflow_id=_field(execution, "workflow_id"),
        execution_id=_field(execution, "id"),
        node_id=node_id,
        contact=_contact_values(contact),
        config=config,
        moment=now(),
    )


def _contact_values(contact: Any) -> dict | None:
    if contact is None:
        return None
    return {
        name: _field(contact, name) for name in ("id", "email", "phone", "unsubscribed", "timezone")
    }


def gate_single(firm_id, channel, execution, node_id, contact, config) -> tuple[Verdict, Any]:
    """The chain for one message, for callers outside a batch; returns the
    verdict and the topic the chain resolved."""
    candidate = candidate_for(firm_id, channel, execution, node_id, contact, config)
    verdict = GateRun(db.session.connection(), "step", [candidate]).check(candidate)
    return verdict, candidate.extra.get("topic")


def _email_addresses(row: dict, config, contact: Any) -> None:
    row["from_address"] = config.from_email or current_app.config["MAIL_FROM"]
    row["to_address"] = recipient("email", contact)
    row["message_id"] = email_message_id(row["message_id"], row["from_address"])


def _sms_address(row: dict, config, contact: Any) -> None:
    row["to_address"] = recipient("sms", contact)
    row["message_id"] = f"sms_{row['message_id']}"


def _webhook_address(row: dict, config, contact: Any) -> None:
    row["to_address"] = config.url
    row["message_id"] = f"msg_{row['message_id']}"


_ADDRESSES = {"email": _email_addresses, "sms": _sms_address, "webhook": _webhook_address}


def _build_email(row: dict, config, context: dict, contact: Any) -> str | None:
    _email_addresses(row, config, contact)
    row["subject"] = " ".join(render_text(config.subject, context).split())[:998]
    row["body_html"] = render_html(config.body_html, context) if config.body_html else ""
    row["body_text"] = render_text(config.body_text, context) if config.body_text else ""
    # The links the template wrote itself: only these are click-tracked
    # (tracking.LinkPolicy; docs/SENDING.md, "Click tracking").
    row["payload"] = {**row["payload"], "links": literal_links(config.body_html, config.body_text)}
    if not row["to_address"]:
        return "contact has no e-mail address"
    return None


def _build_sms(row: dict, config, context: dict, contact: Any) -> str | None:
    _sms_address(row, config, contact)
    row["body_text"] = render_text(config.body, context)
    row["payload"] = {"to": row["to_address"], "body": row["body_text"]}
    if not row["to_address"]:
        return "contact has no phone number"
    return None


def _build_webhook(row: dict, config, context: dict, contact: Any) -> str | None:
    if config.payload is None:
        body = default_webhook_payload(context)
    else:
        body = _json_safe(_render_strings(config.payload, context))
    try:
        json.dumps(body)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"payload is not JSON: {exc}") from None
    headers = {name: render_text(value, context) for name, value in config.headers.items()}
    for name, value in headers.items():
        if "\n" in value or "\r" in value:
            raise TemplateError(f"header {name!r} renders to more than one line")
    _webhook_address(row, config, contact)
    row["payload"] = {
        "method": config.method,
        "headers": headers,
        "body": body,
        "timeout_seconds": float(config.timeout_seconds),
    }
    return None


_BUILDERS = {"email": _build_email, "sms": _build_sms, "webhook": _build_webhook}


def _transport_configured(channel: str) -> bool:
    if channel == "email":
        return bool(current_app.config.get("SMTP_HOST"))
    if channel == "sms":
        return bool(current_app.config.get("SMS_GATEWAY_URL"))
    return True  # a webhook names its own receiver


def requeue(execution_id: int, node_id: str, visit: int) -> bool:
    """Make a failed message due again (``retry_execution``), keeping its
    ``message_id``. Runs in the caller's transaction, under its firm;
    returns whether a failed row was found."""
    stmt = (
        update(OutboxMessage)
        .where(
            OutboxMessage.execution_id == execution_id,
            OutboxMessage.node_id == node_id,
            OutboxMessage.visit == visit,
            OutboxMessage.status == "failed",
        )
        .values(status="pending", attempts=0, next_attempt_at=now(), last_error=None)
        .execution_options(synchronize_session=False)
    )
    return db.session.execute(stmt).rowcount == 1
