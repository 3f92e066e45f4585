"""Nodes that change CRM records: tasks, deals, contact fields, tags, lists."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator, model_validator

from app.automation.nodes.registry import ActionConfig, NodeType, register
from app.automation.nodes.summaries import quoted

CONTACT_COLUMNS = ("email", "first_name", "last_name", "phone", "score", "timezone", "unsubscribed")
_SCORE_DELTA = re.compile(r"^[+-]\d+$")


class CreateTaskConfig(ActionConfig):
    title: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=5000)
    due_in_hours: float = Field(default=24, ge=0, le=24 * 366)
    assignee_email: str | None = None


@register
class CreateTask(NodeType):
    key = "create_task"
    label = "Create task"
    family = "action"
    icon = "square-check-big"
    color = "#ca8a04"
    description = "Create a follow-up task for a user."
    Config = CreateTaskConfig

    @classmethod
    def default_config(cls) -> dict:
        return {"title": "Follow up with {{ contact.email }}", "due_in_hours": 24}

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Task {quoted(config.get('title'))}" if config.get("title") else "No title yet"


class DealConfig(ActionConfig):
    title: str | None = Field(default=None, max_length=200)
    value: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    stage: str | None = Field(default=None, max_length=100)
    status: Literal["open", "won", "lost"] | None = None


class CreateDealConfig(DealConfig):
    title: str = Field(min_length=1, max_length=200)


@register
class CreateDeal(NodeType):
    key = "create_deal"
    label = "Create deal"
    family = "action"
    icon = "badge-dollar-sign"
    color = "#16a34a"
    description = "Open a deal for the contact."
    Config = CreateDealConfig

    @classmethod
    def default_config(cls) -> dict:
        return {"title": "Deal for {{ contact.email }}", "value": "0", "stage": "new"}

    @classmethod
    def summary(cls, config: dict) -> str:
        title = quoted(config.get("title")) if config.get("title") else "Deal"
        return (
            f"{title} worth {config['value']}"
            if config.get("value") not in (None, "", "0")
            else title
        )


class UpdateDealConfig(DealConfig):
    @model_validator(mode="after")
    def _changes_something(self):
        if all(getattr(self, name) is None for name in ("title", "value", "stage", "status")):
            raise ValueError("set at least one of title, value, stage, status")
        return self


@register
class UpdateDeal(NodeType):
    key = "update_deal"
    label = "Update deal"
    family = "action"
    icon = "circle-dollar-sign"
    color = "#15803d"
    description = "Change the contact's latest open deal."
    Config = UpdateDealConfig

    @classmethod
    def default_config(cls) -> dict:
        return {"stage": "qualified"}

    @classmethod
    def summary(cls, config: dict) -> str:
        parts = [
            f"{key} {config[key]}"
            for key in ("stage", "status", "value", "title")
            if config.get(key) not in (None, "")
        ]
        return "Set " + ", ".join(parts) if parts else "Nothing to change yet"


class UpdateContactConfig(ActionConfig):
    fields: dict[str, str | int | float | bool | None] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict) -> dict:
        for name, new_value in value.items():
            if name.startswith("custom.") and len(name) > len("custom."):
                continue
            if name not in CONTACT_COLUMNS:
                raise ValueError(f"unknown contact field {name!r}")
            if name == "score" and not (
                isinstance(new_value, int)
                and not isinstance(new_value, bool)
                or isinstance(new_value, str)
                and (_SCORE_DELTA.match(new_value) or new_value.lstrip("-").isdigit())
            ):
                raise ValueError("score must be a whole number or a change like '+10'")
        return value


@register
class UpdateContact(NodeType):
    key = "update_contact"
    label = "Update contact"
    family = "action"
    icon = "user-pen"
    color = "#0d9488"
    description = "Set contact fields; score takes '+10' to add."
    Config = UpdateContactConfig

    @classmethod
    def default_config(cls) -> dict:
        return {"fields": {"score": "+10"}}

    @classmethod
    def summary(cls, config: dict) -> str:
        fields = config.get("fields")
        if not isinstance(fields, dict) or not fields:
            return "No fields yet"
        name, value = next(iter(fields.items()))
        first = (
            f"{name.removeprefix('custom.')} {value}"
            if str(value).startswith(("+", "-"))
            else f"{name.removeprefix('custom.')} = {value}"
        )
        return f"Set {first}" + (f" +{len(fields) - 1} more" if len(fields) > 1 else "")


class TagConfig(ActionConfig):
    tag: str = Field(min_length=1, max_length=100)


@register
class AddTag(NodeType):
    key = "add_tag"
    label = "Add tag"
    family = "action"
    icon = "tag"
    color = "#9333ea"
    description = "Tag the contact."
    Config = TagConfig

    @classmethod
    def default_config(cls) -> dict:
        return {"tag": "engaged"}

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Add tag {config['tag']}" if config.get("tag") else "No tag yet"


@register
class RemoveTag(NodeType):
    key = "remove_tag"
    label = "Remove tag"
    family = "action"
    icon = "tag-x"
    color = "#a855f7"
    description = "Remove a tag from the contact."
    Config = TagConfig

    @classmethod
    def default_config(cls) -> dict:
        return {"tag": "engaged"}

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Remove tag {config['tag']}" if config.get("tag") else "No tag yet"


class ListConfig(ActionConfig):
    list: int = Field(ge=1)


@register
class AddToList(NodeType):
    key = "add_to_list"
    label = "Add to list"
    family = "action"
    icon = "list-plus"
    color = "#ea580c"
    description = "Add the contact to a list."
    Config = ListConfig

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Add to list {config['list']}" if config.get("list") else "No list yet"


@register
class RemoveFromList(NodeType):
    key = "remove_from_list"
    label = "Remove from list"
    family = "action"
    icon = "list-minus"
    color = "#f97316"
    description = "Remove the contact from a list."
    Config = ListConfig

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Remove from list {config['list']}" if config.get("list") else "No list yet"
