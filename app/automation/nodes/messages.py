"""Nodes that send something: e-mail, SMS, webhook, internal notification.

A message step never sends: it writes its message as an outbox row keyed by
(execution, node, visit) in the same transaction as the step; the
dispatcher (app/automation/delivery/dispatcher.py) sends it, records it,
and wakes the execution. A "pending" row makes the execution wait
(``wait_reason`` "delivery"); "recorded", "skipped" and "test" rows finish
the step at once.

Before the row is written, the message passes the send gates
(``app.automation.delivery.gates``), asked once for the whole batch: a skip
writes a skipped row with the reason, a defer writes nothing and holds the
execution at this step until the gate's moment (docs/SENDING.md).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import EmailStr, Field, field_validator, model_validator

from app.automation.delivery.gates import Candidate, GateRun, Verdict
from app.automation.delivery.outbox import build_outbox_row, candidate_for
from app.automation.delivery.senders import parse_sender, sender_problem
from app.automation.delivery.webhook import UnsafeURL, check_url_syntax, url_warnings
from app.automation.delivery.windows import WindowError, parse_window
from app.automation.nodes import form
from app.automation.nodes.registry import (
    ActionConfig,
    CheckContext,
    NodeType,
    get_node_type,
    register,
)
from app.automation.nodes.step import Outcome, Step, would
from app.automation.nodes.summaries import quoted
from app.clock import ensure_utc
from app.extensions import db

# A delivery wait is ended by the dispatcher's wake(); this is only the
# safety net in case that wake was lost (a crash right after sending).
DELIVERY_RECHECK = timedelta(minutes=5)


def _existing(step: Step) -> dict | None:
    """The outbox row this step's visit wrote before, read through the
    batch state (a forecast's sandbox keeps its own: analytics/forecast.py)."""
    return step.state.message_of(step.row["id"], step.node.node_id, step.visit)


def _finish(step: Step, row: dict) -> Outcome:
    status = row.get("status")
    result = {"status": status, "message_id": row.get("message_id"), "outbox_id": row.get("id")}
    if status == "sent":
        return Outcome(result=result)
    if status == "failed":
        return Outcome.fail(row.get("last_error") or "delivery failed", **result)
    if status in ("recorded", "test"):
        return Outcome(result={**result, "test": status == "test"})
    if status == "skipped":
        response = row.get("response") or {}
        reason = response.get("reason") or row.get("last_error")
        gate = {"gate": response["gate"]} if response.get("gate") else {}
        return Outcome(status="skipped", result={**result, "reason": reason, **gate})
    return Outcome.wait(step.moment + DELIVERY_RECHECK, "delivery", **result)


def _gate_run(step: Step) -> GateRun:
    """The batch's gate run: its population is every contact of the batch,
    so each gate reads once for all of them (one query per batch)."""
    state = step.state
    if state.gate_run is None:
        channels = ("email", "sms")
        population = [
            Candidate(
                firm_id=state.firm_of_contact.get(contact_id, step.firm_id),
                channel=channel,
                address=str(contact.contact.get("email" if channel == "email" else "phone") or ""),
                contact_id=contact_id,
                contact=contact.contact,
                moment=step.moment,
            )
            for contact_id, contact in state.contacts.items()
            for channel in channels
        ]
        state.gate_run = GateRun(db.session.connection(), "step", population)
    return state.gate_run


def _window(step: Step):
    """The step's own send window if it sets one (None: it ignores the
    workflow's), else the workflow's."""
    own = getattr(step.config, "own_window", None)
    if own is not None:
        sets, value = own()
        if sets:
            return parse_window(value)
    return getattr(step.workflow, "send_window", None)


def _verdict(step: Step) -> tuple[Verdict, dict | None]:
    candidate = candidate_for(
        step.firm_id,
        get_node_type(step.node.node_type).channel,
        step.execution_view(),
        step.node.node_id,
        step.contact.contact,
        step.config,
    )
    candidate.moment = step.moment
    candidate.extra["send_window"] = _window(step)
    candidate.extra["priority"] = getattr(step.workflow, "priority", 5)
    if step.resuming == "held" and step.waiting:
        candidate.extra["held_since"] = ensure_utc(step.waiting.get("entered_at"))
    verdict = _gate_run(step).check(candidate)
    return verdict, candidate.extra.get("topic")


def send_message(step: Step) -> Outcome:
    # A step held by a gate wrote no outbox row for this visit (the row and
    # the flow state are written together), so a release need not look for
    # one: that read per message was most of the cost of releasing 100,000
    # held messages at a window's opening (benchmarks/pacing.py). The
    # engine's insert is ON CONFLICT DO NOTHING all the same.
    if step.resuming and step.resuming != "held":
        existing = _existing(step)
        if existing is not None:
            return _finish(step, existing)
    verdict, topic = _verdict(step)
    if verdict.action == "defer":
        return Outcome.defer(verdict.until, **verdict.as_result())
    context = step.template_context()
    row = build_outbox_row(
        firm_id=step.firm_id,
        execution=step.execution_view(),
        node=step.node_view(),
        visit=step.visit,
        context=context,
        contact=context["contact"],
        verdict=verdict,
        topic=topic,
    )
    row.setdefault("firm_id", step.firm_id)
    row.setdefault("execution_id", step.row["id"])
    row.setdefault("workflow_id", step.row["workflow_id"])
    row.setdefault("contact_id", step.contact_id)
    row.setdefault("node_id", step.node.node_id)
    row.setdefault("visit", step.visit)
    row.setdefault("created_at", step.moment)
    step.effects.outbox.append(row)
    if row.get("status") == "pending":
        step.effects.delivery_pending = True
    return _finish(step, row)


class _SendWindowField:
    """A message step's own ``send_window`` (docs/SENDING.md): absent, the
    workflow's applies; ``null``, none applies; else this one."""

    send_window: dict | None = None

    @field_validator("send_window", check_fields=False)
    @classmethod
    def _window(cls, value):
        try:
            window = parse_window(value)
        except WindowError as exc:
            raise ValueError(str(exc)) from None
        return window.as_dict() if window is not None else None

    def own_window(self) -> tuple[bool, dict | None]:
        """(whether the step sets its own window, the window or None)."""
        return "send_window" in self.model_fields_set, self.send_window


class SendEmailConfig(_SendWindowField, ActionConfig):
    subject: str = Field(default="", max_length=500)
    body_html: str = Field(default="", max_length=500_000)
    body_text: str = Field(default="", max_length=500_000)
    template_id: int | str | None = None
    from_email: str | None = Field(default=None, max_length=320)
    # A topic id of the firm; None: the firm's default marketing topic.
    topic: int | None = Field(default=None, ge=1)

    @field_validator("from_email")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        return parse_sender(value) if value not in (None, "") else None

    @model_validator(mode="after")
    def _has_content(self):
        if not self.subject.strip() and self.template_id is None:
            raise ValueError("subject: required")
        if not (self.body_html.strip() or self.body_text.strip()) and self.template_id is None:
            raise ValueError("body_html or body_text: one is required")
        return self


@register
class SendEmail(NodeType):
    key = "send_email"
    label = "Send email"
    family = "action"
    icon = "mail"
    color = "#2563eb"
    description = "Send an e-mail to the contact, with open and click tracking."
    Config = SendEmailConfig
    sends_message = True
    channel = "email"
    form = (
        form.Text(
            "subject",
            "Subject",
            required=True,
            placeholder="Welcome, {{ contact.first_name }}!",
        ),
        form.TextArea(
            "body_html",
            "HTML body",
            rows=8,
            keep=True,
            help="Leave empty to send the plain-text body only.",
        ),
        form.TextArea("body_text", "Plain-text body", rows=5, keep=True),
        form.Text(
            "from_email",
            "From",
            help="Optional, on one of your sending domains, with a name if you like: "
            "Acme Team <news@acme.example>.",
        ),
        form.TopicChoice("topic", "Topic", blank="The default marketing topic"),
        form.IdValue("template_id"),
        form.MergeHelp(),
        form.Preview(),
        form.SendTest(),
        form.SendWindow(),
        form.Retry(),
    )
    templated = ("subject", "body_html", "body_text")
    previewed = (
        ("subject", "Subject", False),
        ("body_html", "HTML body", True),
        ("body_text", "Text body", False),
    )

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        return send_message(step)

    @classmethod
    def check(cls, configuration: dict, context: CheckContext) -> dict[str, list[str]]:
        """``from_email`` must be on one of the current firm's sending
        domains or MAIL_FROM's (docs/SENDING.md)."""
        problem = sender_problem(configuration.get("from_email"))
        return {"from_email": [problem]} if problem else {}

    @classmethod
    def default_config(cls) -> dict:
        return {
            "subject": "Hello {{ contact.first_name }}",
            "body_text": "Hi {{ contact.first_name }},\n",
        }

    @classmethod
    def summary(cls, config: dict) -> str:
        if config.get("subject"):
            return f"Send {quoted(config['subject'])}"
        return (
            "Template " + str(config["template_id"])
            if config.get("template_id")
            else "No subject yet"
        )


class SendSmsConfig(_SendWindowField, ActionConfig):
    body: str = Field(min_length=1, max_length=1600)


@register
class SendSms(NodeType):
    key = "send_sms"
    label = "Send SMS"
    family = "action"
    icon = "message-square"
    color = "#0891b2"
    description = "Send a text message to the contact's phone."
    Config = SendSmsConfig
    sends_message = True
    channel = "sms"
    form = (
        form.TextArea(
            "body",
            "Message",
            rows=4,
            keep=True,
            help="Up to 1,600 characters. Contacts without a phone number are skipped.",
        ),
        form.MergeHelp(),
        form.Preview(),
        form.SendWindow(),
        form.Retry(),
    )
    templated = ("body",)
    previewed = (("body", "SMS", False),)

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        return send_message(step)

    @classmethod
    def default_config(cls) -> dict:
        return {"body": "Hi {{ contact.first_name }}!"}

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Text {quoted(config.get('body'))}" if config.get("body") else "No text yet"


class WebhookConfig(ActionConfig):
    url: str = Field(min_length=1, max_length=2000)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    payload: dict | None = None
    timeout_seconds: float = Field(default=10, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.upper() if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _safe_headers(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = {
            "host",
            "content-length",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        }
        for name, header_value in value.items():
            if name.lower() in reserved:
                raise ValueError(f"header {name!r} is set by the system")
            if "\n" in name or "\r" in name or "\n" in header_value or "\r" in header_value:
                raise ValueError("header names and values must be on one line")
        return value


@register
class Webhook(NodeType):
    key = "webhook"
    label = "Webhook"
    family = "action"
    icon = "webhook"
    color = "#7c3aed"
    description = "POST a signed JSON payload to another system."
    Config = WebhookConfig
    sends_message = True
    channel = "webhook"
    form = (
        form.Text(
            "url",
            "URL",
            type="url",
            required=True,
            placeholder="https://example.com/hooks/automation",
            help="Requests are signed (Standard Webhooks) and carry an Idempotency-Key.",
        ),
        form.Choice(
            "method",
            "Method",
            options=(
                ("POST", "POST"),
                ("PUT", "PUT"),
                ("PATCH", "PATCH"),
                ("GET", "GET"),
                ("DELETE", "DELETE"),
            ),
        ),
        form.Headers(),
        form.Json(
            "payload",
            "Payload (JSON)",
            help="Leave empty to send the contact, workflow and execution summary. "
            "String values may use merge fields.",
        ),
        form.Number("timeout_seconds", "Timeout (seconds)", placeholder="10"),
        form.Retry(),
    )
    templated = ("payload", "headers")

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        return send_message(step)

    @classmethod
    def check(cls, configuration: dict, context: CheckContext) -> dict[str, list[str]]:
        """The SSRF guard without DNS (delivery/webhook.py): scheme,
        credentials, the host's form, and an address written in the URL
        (``127.0.0.1``, ``0x7f.0.0.1``, ``[::1]``, ``localhost``) must be
        public unless WEBHOOK_ALLOW_PRIVATE. A name is resolved at send."""
        url = configuration.get("url")
        if not isinstance(url, str) or not url.strip():
            return {}  # the schema says it is required
        try:
            check_url_syntax(url, context.allow_private)
        except UnsafeURL as exc:
            return {"url": [str(exc)]}
        return {}

    @classmethod
    def save_warnings(cls, configuration: dict, context: CheckContext) -> dict[str, list[str]]:
        """A host that does not resolve now, or resolves to a non-public
        address: saved, said, and refused at send while it holds."""
        url = configuration.get("url")
        if not isinstance(url, str) or cls.check(configuration, context):
            return {}
        warnings = url_warnings(url, context.allow_private)
        return {"url": warnings} if warnings else {}

    @classmethod
    def default_config(cls) -> dict:
        return {"url": "https://example.com/hooks/automation", "method": "POST"}

    @classmethod
    def summary(cls, config: dict) -> str:
        url = str(config.get("url") or "")
        host = url.split("://", 1)[-1].split("/", 1)[0]
        return f"{str(config.get('method') or 'POST').upper()} {host}" if host else "No URL yet"


class InternalNotificationConfig(ActionConfig):
    message: str = Field(min_length=1, max_length=5000)
    recipients: list[EmailStr] = Field(default_factory=list)


@register
class InternalNotification(NodeType):
    key = "internal_notification"
    label = "Notify team"
    family = "action"
    icon = "bell"
    color = "#db2777"
    description = "Send an in-app notification to users of your firm."
    Config = InternalNotificationConfig
    form = (
        form.TextArea("message", "Message", rows=3, keep=True),
        form.Recipients(),
        form.MergeHelp(),
        form.Preview(),
        form.Retry(),
    )
    templated = ("message",)
    previewed = (("message", "Message", False),)

    @classmethod
    def default_config(cls) -> dict:
        return {"message": "{{ contact.email }} reached this step", "recipients": []}

    @classmethod
    def summary(cls, config: dict) -> str:
        people = config.get("recipients") or []
        if not isinstance(people, list) or not people:
            return "Notify the team"
        more = f" +{len(people) - 1}" if len(people) > 1 else ""
        return f"Notify {people[0]}{more}"

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        users = step.state.firm_users(step.firm_id)
        wanted = [email.strip().lower() for email in step.config.recipients]
        if wanted:
            recipients = [u for u in users if u["email"] in wanted]
            missing = sorted(set(wanted) - {u["email"] for u in recipients})
        else:
            recipients = [u for u in users if u["role"] == "admin"]
            missing = []
        if not recipients:
            return Outcome.fail("no recipient of this notification is a user of this firm")
        message = step.render(step.config.message)
        emails = [u["email"] for u in recipients]
        if (test := would(step, notify=emails, message=message)) is not None:
            return test
        for user in recipients:
            step.effects.notifications.append(
                {
                    "firm_id": step.firm_id,
                    "user_id": user["id"],
                    "execution_id": step.row["id"],
                    "message": message,
                    "created_at": step.moment,
                }
            )
        return Outcome(result={"recipients": emails, "unknown": missing, "message": message})
