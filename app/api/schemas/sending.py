"""Models of the sending-safety resources: suppressions, topics, sending domains."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from app.api.core import Input, Output
from app.api.pagination import PageQuery

ManualReason = Literal["hard_bounce", "complaint", "manual", "unsubscribe"]


class SuppressionIn(Input):
    """One of ``email`` (the e-mail channel) or ``phone`` (SMS)."""

    email: str | None = Field(default=None, min_length=1, max_length=320)
    phone: str | None = Field(default=None, min_length=1, max_length=40)
    reason: ManualReason = "manual"
    note: str = Field(default="", max_length=2000)


class SuppressionOut(Output):
    id: int
    email: str | None = Field(description="the address, for the e-mail channel")
    phone: str | None = Field(description="the number, for the sms channel")
    channel: Literal["email", "sms"]
    reason: Literal["hard_bounce", "complaint", "manual", "unsubscribe", "soft_bounce"]
    note: str
    source: str
    detail: dict
    message: int | None = Field(description="the outbox message that caused it, if any")
    created_by: str
    created_at: datetime
    description: str = Field(description="the reason as a skipped step shows it")


class SuppressionQuery(PageQuery):
    email: str | None = Field(default=None, max_length=320, description="exact address")
    phone: str | None = Field(default=None, max_length=40, description="exact phone number")
    channel: Literal["email", "sms"] | None = None
    q: str | None = Field(default=None, max_length=320, description="part of the address")
    reason: str | None = Field(default=None, max_length=20)


class TopicIn(Input):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    kind: Literal["marketing", "transactional"] = "marketing"
    is_default: bool | None = None


class TopicUpdate(Input):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    kind: Literal["marketing", "transactional"] | None = None
    is_default: bool | None = None


class TopicOut(Output):
    id: int
    name: str
    description: str
    kind: Literal["marketing", "transactional"]
    is_default: bool
    created_at: datetime


class DnsRecord(Output):
    type: Literal["TXT"]
    name: str
    value: str


class SendingDomainIn(Input):
    domain: str = Field(min_length=1, max_length=253)
    dkim_selector: str = Field(default="automation", max_length=63)
    dkim_private_key: str | None = Field(
        default=None,
        max_length=20_000,
        description="PEM; write-only. Omit it and a 2048-bit key is made for you.",
    )


class SendingDomainUpdate(Input):
    dkim_selector: str | None = Field(default=None, max_length=63)
    dkim_private_key: str | None = Field(
        default=None, max_length=20_000, description="PEM; write-only. Omit it for a new key."
    )


class SendingDomainOut(Output):
    id: int
    domain: str
    dkim_selector: str
    has_dkim_key: bool
    dns_record: DnsRecord | None = Field(description="publish this TXT record")
    created_at: datetime
