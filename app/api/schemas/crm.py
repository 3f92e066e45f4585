"""Models of the CRM resources (docs/CONTRACT.md "CRM")."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import EmailStr, Field, field_validator

from app.api.core import DbId, Input, Output
from app.automation.templating.render import template_errors

TagName = Field(min_length=1, max_length=100)
FORM_FIELD_TYPES = Literal[
    "text", "email", "tel", "number", "date", "textarea", "checkbox", "hidden", "url"
]
FORM_FIELD_NAME = r"^(email|first_name|last_name|phone|timezone|custom\.[A-Za-z0-9_]{1,60})$"


def _timezone(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone (use an IANA name like Europe/Berlin)") from None
    return value


# --- contacts ----------------------------------------------------------------


class ContactCreate(Input):
    email: EmailStr = Field(max_length=320)
    first_name: str = Field(default="", max_length=100)
    last_name: str = Field(default="", max_length=100)
    phone: str = Field(default="", max_length=40)
    score: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    timezone: str = Field(default="UTC", max_length=64)
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list, max_length=100)
    lists: list[DbId] = Field(default_factory=list, max_length=100)
    unsubscribed: bool = False

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _timezone(v)))

    @field_validator("tags")
    @classmethod
    def _tag_names(cls, value: list[str]) -> list[str]:
        names = [name.strip() for name in value]
        if any(not name or len(name) > 100 for name in names):
            raise ValueError("tag names are 1-100 characters")
        return list(dict.fromkeys(names))


class ContactUpdate(Input):
    email: EmailStr | None = Field(default=None, max_length=320)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=40)
    score: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    timezone: str | None = Field(default=None, max_length=64)
    custom_fields: dict[str, Any] | None = None
    unsubscribed: bool | None = None
    subscriptions: dict[int, bool] | None = Field(
        default=None, description='topic id -> subscribed, e.g. {"3": false}'
    )

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _timezone(v)))


class ConsentOut(Output):
    method: str
    form: int | None = Field(validation_alias="form_id")
    wording: str
    ip: str
    user_agent: str
    given_at: datetime
    confirmed_at: datetime | None


class ContactOut(Output):
    id: int
    email: str
    first_name: str
    last_name: str
    phone: str
    score: int
    timezone: str
    custom_fields: dict[str, Any]
    tags: list[str] = Field(description="tag names")
    lists: list[int] = Field(description="ids of the lists the contact is in")
    unsubscribed: bool
    unsubscribed_at: datetime | None
    subscriptions: dict[str, bool] = Field(
        default_factory=dict, description="topic id -> whether the contact gets that topic"
    )
    consent: list[ConsentOut] = Field(default_factory=list, description="consent as given")
    created_at: datetime
    updated_at: datetime

    @field_validator("tags", mode="before")
    @classmethod
    def _names(cls, value):
        return [getattr(tag, "name", tag) for tag in value]

    @field_validator("lists", mode="before")
    @classmethod
    def _ids(cls, value):
        return [getattr(item, "id", item) for item in value]


class TagIn(Input):
    tag: str = TagName


class TagByEmailIn(Input):
    email: EmailStr = Field(
        max_length=320, description="the contact with this address, made if there is none"
    )
    tag: str = TagName


class ListRef(Input):
    list: DbId


# --- lists, forms ------------------------------------------------------------


class ListCreate(Input):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)


class ListUpdate(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)


class ListOut(Output):
    id: int
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


class FormField(Input):
    name: str = Field(pattern=FORM_FIELD_NAME, description="a contact column or custom.<key>")
    label: str = Field(default="", max_length=200)
    type: FORM_FIELD_TYPES = "text"
    required: bool = False


def _template(value: str | None) -> str | None:
    if value and (errors := template_errors(value)):
        raise ValueError("; ".join(errors))
    return value


class FormConsent(Input):
    """How a form treats known addresses and consent (CONTRACT "Forms")."""

    update_existing: Literal["fill_empty", "overwrite"] | None = None
    double_opt_in: bool | None = None
    confirm_subject: str | None = Field(default=None, max_length=500)
    confirm_body: str | None = Field(default=None, max_length=20_000)
    consent_text: str | None = Field(default=None, max_length=5000)

    _templates = field_validator("confirm_subject", "confirm_body")(
        classmethod(lambda cls, v: _template(v))
    )


class FormCreate(FormConsent):
    name: str = Field(min_length=1, max_length=200)
    fields: list[FormField] = Field(default_factory=list, max_length=50)
    success_message: str = Field(default="Thank you!", max_length=5000)
    redirect_url: str = Field(default="", max_length=2000, pattern=r"^(https?://\S+)?$")


class FormUpdate(FormConsent):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    fields: list[FormField] | None = Field(default=None, max_length=50)
    success_message: str | None = Field(default=None, max_length=5000)
    redirect_url: str | None = Field(default=None, max_length=2000, pattern=r"^(https?://\S+)?$")


class FormFieldOut(Output):
    name: str
    label: str = ""
    type: str = "text"
    required: bool = False


class FormOut(Output):
    id: int
    name: str
    form_key: str = Field(description="read-only; the public form is /f/<form_key>")
    fields: list[FormFieldOut]
    success_message: str
    redirect_url: str
    update_existing: Literal["fill_empty", "overwrite"]
    double_opt_in: bool
    confirm_subject: str
    confirm_body: str
    consent_text: str
    created_at: datetime
    updated_at: datetime


# --- deals, tasks ------------------------------------------------------------


class DealCreate(Input):
    contact: DbId | None = None
    title: str = Field(min_length=1, max_length=200)
    value: Decimal = Field(default=Decimal("0"), ge=0, max_digits=14, decimal_places=2)
    stage: str = Field(default="new", min_length=1, max_length=100)
    status: Literal["open", "won", "lost"] = "open"


class DealUpdate(Input):
    contact: DbId | None = None
    title: str | None = Field(default=None, min_length=1, max_length=200)
    value: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    stage: str | None = Field(default=None, min_length=1, max_length=100)
    status: Literal["open", "won", "lost"] | None = None


class DealOut(Output):
    id: int
    contact: int | None = Field(validation_alias="contact_id")
    title: str
    value: float
    stage: str
    status: str
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TaskCreate(Input):
    contact: DbId | None = None
    assignee: DbId | None = Field(default=None, description="a user id of your firm")
    title: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=10000)
    due_at: datetime | None = None
    status: Literal["open", "done"] = "open"


class TaskUpdate(Input):
    contact: DbId | None = None
    assignee: DbId | None = None
    title: str | None = Field(default=None, min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=10000)
    due_at: datetime | None = None
    status: Literal["open", "done"] | None = None


class TaskOut(Output):
    id: int
    contact: int | None = Field(validation_alias="contact_id")
    assignee: int | None = Field(validation_alias="assignee_id")
    execution: int | None = Field(validation_alias="execution_id")
    title: str
    description: str
    due_at: datetime | None
    status: str
    created_at: datetime
    updated_at: datetime


# --- events ------------------------------------------------------------------


class EventIn(Input):
    type: str = Field(min_length=1, max_length=50, description="any trigger type")
    contact_id: DbId
    data: dict[str, Any] = Field(default_factory=dict)
    event_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="a repeat is a no-op"
    )


class EventOut(Output):
    event_id: str
    duplicate: bool = Field(description="true when this event_id was seen before")
    executions: list[int] = Field(description="ids of the executions started")
