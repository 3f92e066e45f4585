"""Nodes that send something: e-mail, SMS, webhook, internal notification."""

from __future__ import annotations

from typing import Literal

from pydantic import EmailStr, Field, field_validator, model_validator

from app.automation.nodes.registry import ActionConfig, NodeType, register
from app.automation.nodes.summaries import quoted


class _SendWindowField:
    """A message step's own ``send_window`` (docs/SENDING.md): absent, the
    workflow's applies; ``null``, none applies; else this one."""

    send_window: dict | None = None

    @field_validator("send_window", check_fields=False)
    @classmethod
    def _window(cls, value):
        from app.automation.delivery.windows import WindowError, parse_window

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
        from app.automation.delivery.senders import parse_sender

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
