"""The trigger-type registry: one entry per trigger type of the seed.

Each type declares its configuration filter (pydantic) and which family it
belongs to; the event bus matches events against these filters, the API and
the builder's triggers panel validate and render them from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from pydantic import ConfigDict, Field, ValidationError, field_validator

from app.automation.crm.dates import DEFAULT_AT
from app.automation.nodes.registry import validation_error_fields
from app.automation.rules.schema import HasRules

_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class TriggerConfig(HasRules):
    model_config = ConfigDict(extra="forbid")


class FormConfig(TriggerConfig):
    form_id: int | None = None


class EmailEventConfig(TriggerConfig):
    # Only events about e-mails sent by this workflow/node, when given.
    workflow_id: int | None = None
    node: str | None = None
    url_contains: str | None = None


class PageConfig(TriggerConfig):
    url_contains: str | None = Field(default=None, max_length=500)


class ContactUpdatedConfig(TriggerConfig):
    # Fire only when one of these fields changed (all fields when empty).
    fields: list[str] = Field(default_factory=list)


class TagFilterConfig(TriggerConfig):
    tag: str | None = None


class ListFilterConfig(TriggerConfig):
    list: int | None = None


class DealConfig(TriggerConfig):
    pipeline_stage: str | None = None


class DealStageConfig(TriggerConfig):
    from_stage: str | None = None
    to_stage: str | None = None


class DealValueConfig(TriggerConfig):
    min_value: float | None = None


class ScoreConfig(TriggerConfig):
    threshold: int


class DateReachedConfig(TriggerConfig):
    at: datetime

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must include a timezone, e.g. 2026-12-24T09:00:00Z")
        return value


def _field_name(value: str) -> str:
    if not (value.startswith("custom.") and len(value) > 7) and value not in ("created_at",):
        raise ValueError("must be custom.<key> or created_at")
    return value


def _time(value: str) -> str:
    if not _TIME_OF_DAY.match(value):
        raise ValueError("must be a time of day like 09:00")
    return value


class DateFieldConfig(TriggerConfig):
    field: str
    offset_days: int = Field(default=0, ge=-3660, le=3660)
    at: str = DEFAULT_AT  # the date rule's default (crm/dates.py)

    _f = field_validator("field")(classmethod(lambda cls, v: _field_name(v)))
    _t = field_validator("at")(classmethod(lambda cls, v: _time(v)))


class AnniversaryConfig(TriggerConfig):
    field: str
    at: str = DEFAULT_AT  # the date rule's default (crm/dates.py)

    _f = field_validator("field")(classmethod(lambda cls, v: _field_name(v)))
    _t = field_validator("at")(classmethod(lambda cls, v: _time(v)))


class TimeDelayConfig(TriggerConfig):
    delay_hours: float = Field(gt=0, le=24 * 366 * 5)


@dataclass(frozen=True)
class TriggerType:
    key: str
    label: str
    family: str
    Config: type[TriggerConfig]
    description: str = ""
    # Date triggers are driven by the scheduler rather than by events.
    scheduled: bool = False

    families: ClassVar[tuple[str, ...]] = (
        "Forms",
        "Email",
        "Site",
        "CRM",
        "Deals",
        "Score",
        "Date",
        "Manual",
    )


TRIGGER_TYPES: dict[str, TriggerType] = {}


def register(trigger_type: TriggerType) -> TriggerType:
    if trigger_type.key in TRIGGER_TYPES:
        raise ValueError(f"trigger type {trigger_type.key!r} registered twice")
    TRIGGER_TYPES[trigger_type.key] = trigger_type
    return trigger_type


for _key, _label, _family, _config, _description, _scheduled in [
    ("form_submitted", "Form submitted", "Forms", FormConfig, "A contact submits a form.", False),
    (
        "email_opened",
        "Email opened",
        "Email",
        EmailEventConfig,
        "A contact opens an e-mail.",
        False,
    ),
    (
        "email_clicked",
        "Link clicked",
        "Email",
        EmailEventConfig,
        "A contact clicks a link in an e-mail.",
        False,
    ),
    (
        "email_replied",
        "Email replied",
        "Email",
        EmailEventConfig,
        "A contact replies to an e-mail.",
        False,
    ),
    (
        "email_bounced",
        "Email bounced",
        "Email",
        EmailEventConfig,
        "An e-mail to the contact bounces.",
        False,
    ),
    (
        "email_complained",
        "Marked as spam",
        "Email",
        EmailEventConfig,
        "A contact reports an e-mail as spam (a provider's complaint callback).",
        False,
    ),
    (
        "email_unsubscribed",
        "Unsubscribed",
        "Email",
        EmailEventConfig,
        "A contact unsubscribes.",
        False,
    ),
    (
        "page_visited",
        "Page visited",
        "Site",
        PageConfig,
        "A known contact visits a page of your site.",
        False,
    ),
    (
        "site_activity",
        "Site activity",
        "Site",
        PageConfig,
        "Any tracked activity on your site.",
        False,
    ),
    ("contact_created", "Contact created", "CRM", TriggerConfig, "A new contact is added.", False),
    (
        "contact_updated",
        "Contact updated",
        "CRM",
        ContactUpdatedConfig,
        "A contact's fields change.",
        False,
    ),
    (
        "contact_tag_added",
        "Tag added",
        "CRM",
        TagFilterConfig,
        "A tag is added to a contact.",
        False,
    ),
    (
        "contact_tag_removed",
        "Tag removed",
        "CRM",
        TagFilterConfig,
        "A tag is removed from a contact.",
        False,
    ),
    (
        "contact_list_added",
        "Added to list",
        "CRM",
        ListFilterConfig,
        "A contact joins a list.",
        False,
    ),
    (
        "contact_list_removed",
        "Removed from list",
        "CRM",
        ListFilterConfig,
        "A contact leaves a list.",
        False,
    ),
    (
        "deal_created",
        "Deal created",
        "Deals",
        DealConfig,
        "A deal is created for a contact.",
        False,
    ),
    (
        "deal_stage_changed",
        "Deal stage changed",
        "Deals",
        DealStageConfig,
        "A deal moves between stages.",
        False,
    ),
    (
        "deal_value_changed",
        "Deal value changed",
        "Deals",
        DealValueConfig,
        "A deal's value changes.",
        False,
    ),
    ("deal_won", "Deal won", "Deals", DealConfig, "A deal's status becomes won.", False),
    ("deal_lost", "Deal lost", "Deals", DealConfig, "A deal's status becomes lost.", False),
    (
        "score_threshold_reached",
        "Score reached",
        "Score",
        ScoreConfig,
        "A contact's score rises to the threshold.",
        False,
    ),
    (
        "score_threshold_dropped",
        "Score dropped",
        "Score",
        ScoreConfig,
        "A contact's score falls below the threshold.",
        False,
    ),
    (
        "date_reached",
        "Date reached",
        "Date",
        DateReachedConfig,
        "At a fixed moment, for the contacts the rules select.",
        True,
    ),
    (
        "date_field_reached",
        "Date field reached",
        "Date",
        DateFieldConfig,
        "A contact date field plus an offset.",
        True,
    ),
    (
        "time_delay",
        "Time after creation",
        "Date",
        TimeDelayConfig,
        "A delay after the contact was created.",
        True,
    ),
    (
        "anniversary",
        "Anniversary",
        "Date",
        AnniversaryConfig,
        "Every year on a contact date field.",
        True,
    ),
    ("manual", "Manual", "Manual", TriggerConfig, "Started by a user for chosen contacts.", False),
    ("api", "API", "Manual", TriggerConfig, "Started by an API call.", False),
]:
    register(TriggerType(_key, _label, _family, _config, _description, _scheduled))


class UnknownTriggerType(KeyError):
    pass


def get_trigger_type(key: str) -> TriggerType:
    try:
        return TRIGGER_TYPES[key]
    except KeyError:
        raise UnknownTriggerType(key) from None


def trigger_config_errors(trigger_type: str, configuration: dict | None) -> dict[str, list[str]]:
    try:
        kind = get_trigger_type(trigger_type)
    except UnknownTriggerType:
        return {"trigger_type": [f"unknown trigger type {trigger_type!r}"]}
    try:
        kind.Config.model_validate(configuration or {})
    except ValidationError as exc:
        return validation_error_fields(exc)
    return {}
