"""Nodes that change CRM records: tags, lists, contact fields, tasks, deals.

Each executor changes the batch's in-memory facts (so later steps see the
change) and records the write on ``step.effects``; the write-back turns the
whole batch's records into a few set-based statements. In test mode
nothing is recorded: the result says what would have happened.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator, model_validator

from app.automation.crm import deals, tasks
from app.automation.nodes import form
from app.automation.nodes.registry import ActionConfig, NodeType, register
from app.automation.nodes.step import Outcome, Step, would
from app.automation.nodes.summaries import quoted

CONTACT_COLUMNS = ("email", "first_name", "last_name", "phone", "score", "timezone", "unsubscribed")
_SCORE_DELTA = re.compile(r"^[+-]\d+$")
_STATUSES = (("open", "Open"), ("won", "Won"), ("lost", "Lost"))


# -- tags -----------------------------------------------------------------------


class TagConfig(ActionConfig):
    tag: str = Field(min_length=1, max_length=100)


_TAG_FORM = (
    form.Text(
        "tag",
        "Tag",
        required=True,
        list="tag-names",
        help="Pick one of your tags or type a new one.",
    ),
    form.Retry(),
)


@register
class AddTag(NodeType):
    key = "add_tag"
    label = "Add tag"
    family = "action"
    icon = "tag"
    color = "#9333ea"
    description = "Tag the contact."
    Config = TagConfig
    form = _TAG_FORM
    templated = ("tag",)

    @classmethod
    def default_config(cls) -> dict:
        return {"tag": "engaged"}

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Add tag {config['tag']}" if config.get("tag") else "No tag yet"

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        name = step.render(step.config.tag).strip()
        if not name:
            return Outcome.fail("the tag name is empty")
        if name in step.contact.tags:
            return Outcome(status="skipped", result={"tag": name, "reason": "already tagged"})
        if (test := would(step, add_tag=name)) is not None:
            return test
        step.contact.tags.add(name)
        step.effects.tag_adds.append((step.contact_id, name))
        return Outcome(result={"tag": name})


@register
class RemoveTag(NodeType):
    key = "remove_tag"
    label = "Remove tag"
    family = "action"
    icon = "tag-x"
    color = "#a855f7"
    description = "Remove a tag from the contact."
    Config = TagConfig
    form = _TAG_FORM
    templated = ("tag",)

    @classmethod
    def default_config(cls) -> dict:
        return {"tag": "engaged"}

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Remove tag {config['tag']}" if config.get("tag") else "No tag yet"

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        name = step.render(step.config.tag).strip()
        if name not in step.contact.tags:
            return Outcome(status="skipped", result={"tag": name, "reason": "not tagged"})
        if (test := would(step, remove_tag=name)) is not None:
            return test
        step.contact.tags.discard(name)
        step.effects.tag_removes.append((step.contact_id, name))
        return Outcome(result={"tag": name})


# -- lists ----------------------------------------------------------------------


class ListConfig(ActionConfig):
    list: int = Field(ge=1)


def _firm_list(step: Step) -> tuple[int, str] | Outcome:
    list_id = int(step.config.list)
    lists = step.state.firm_lists(step.firm_id)
    if list_id not in lists:
        return Outcome.fail(f"list {list_id} does not exist in this firm")
    return list_id, lists[list_id]


@register
class AddToList(NodeType):
    key = "add_to_list"
    label = "Add to list"
    family = "action"
    icon = "list-plus"
    color = "#ea580c"
    description = "Add the contact to a list."
    Config = ListConfig
    form = (form.ListChoice("list", "List"), form.Retry())

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Add to list {config['list']}" if config.get("list") else "No list yet"

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        found = _firm_list(step)
        if isinstance(found, Outcome):
            return found
        list_id, name = found
        if list_id in step.contact.lists:
            return Outcome(status="skipped", result={"list": list_id, "reason": "already a member"})
        if (test := would(step, add_to_list=list_id)) is not None:
            return test
        step.contact.lists.add(list_id)
        step.effects.list_adds.append((step.contact_id, list_id))
        return Outcome(result={"list": list_id, "list_name": name})


@register
class RemoveFromList(NodeType):
    key = "remove_from_list"
    label = "Remove from list"
    family = "action"
    icon = "list-minus"
    color = "#f97316"
    description = "Remove the contact from a list."
    Config = ListConfig
    form = (form.ListChoice("list", "List"), form.Retry())

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Remove from list {config['list']}" if config.get("list") else "No list yet"

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        found = _firm_list(step)
        if isinstance(found, Outcome):
            return found
        list_id, name = found
        if list_id not in step.contact.lists:
            return Outcome(status="skipped", result={"list": list_id, "reason": "not a member"})
        if (test := would(step, remove_from_list=list_id)) is not None:
            return test
        step.contact.lists.discard(list_id)
        step.effects.list_removes.append((step.contact_id, list_id))
        return Outcome(result={"list": list_id, "list_name": name})


# -- contact fields ---------------------------------------------------------------


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


def _coerce(name: str, value):
    if name == "unsubscribed":
        return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}
    if name == "score":
        return int(value)
    return "" if value is None else (value if isinstance(value, str) else str(value))


@register
class UpdateContact(NodeType):
    key = "update_contact"
    label = "Update contact"
    family = "action"
    icon = "user-pen"
    color = "#0d9488"
    description = "Set contact fields; score takes '+10' to add."
    Config = UpdateContactConfig
    form = (form.ContactFields(), form.Retry())

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

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        contact = step.contact.contact
        changed: dict[str, list] = {}
        plan: dict = {"score": 0, "set": {}, "custom": {}}
        new_values: dict = {}
        for name, raw in step.config.fields.items():
            value = step.render(raw) if isinstance(raw, str) else raw
            if name.startswith("custom."):
                key = name[len("custom.") :]
                old = (contact.get("custom_fields") or {}).get(key)
                if old != value:
                    plan["custom"][key] = value
                    changed.setdefault("custom_fields", [None, None])
                    new_values[name] = value
                continue
            if name == "score" and isinstance(value, str) and _SCORE_DELTA.match(value.strip()):
                delta = int(value.strip())
                plan["score"] += delta
                new_values["score"] = (contact.get("score") or 0) + plan["score"]
                continue
            value = _coerce(name, value)
            if contact.get(name) != value:
                plan["set"][name] = value
                new_values[name] = value
        if not new_values:
            return Outcome(status="skipped", result={"reason": "nothing to change"})
        if (test := would(step, update_contact=new_values)) is not None:
            return test
        old_custom = dict(contact.get("custom_fields") or {})
        for name, value in new_values.items():
            if name.startswith("custom."):
                contact["custom_fields"][name[len("custom.") :]] = value
            else:
                changed[name] = [contact.get(name), value]
                contact[name] = value
        if "custom_fields" in changed:
            changed["custom_fields"] = [old_custom, dict(contact["custom_fields"])]
        merged = step.effects.contact_changes.setdefault(
            step.contact_id, {"score": 0, "set": {}, "custom": {}}
        )
        merged["score"] += plan["score"]
        if plan["score"]:
            # A later absolute "score" in the same walk wins over the delta.
            merged["set"].pop("score", None)
        if "score" in plan["set"]:
            merged["score"] = 0
        merged["set"].update(plan["set"])
        merged["custom"].update(plan["custom"])
        step.effects.events.append(
            {
                "event_type": "contact_updated",
                "contact_id": step.contact_id,
                "data": {"changed": changed},
            }
        )
        return Outcome(result={"changed": {k: v for k, v in new_values.items()}})


# -- tasks ------------------------------------------------------------------------


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
    form = (
        form.Text("title", "Task title", required=True),
        form.TextArea("description", "Description", rows=3),
        form.Number("due_in_hours", "Due in (hours)"),
        form.UserChoice("assignee_email", "Assign to", blank="Nobody (unassigned)"),
        form.MergeHelp(),
        form.Preview(),
        form.Retry(),
    )
    templated = ("title", "description")
    previewed = (("title", "Task title", False),)

    @classmethod
    def default_config(cls) -> dict:
        return {"title": "Follow up with {{ contact.email }}", "due_in_hours": 24}

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Task {quoted(config.get('title'))}" if config.get("title") else "No title yet"

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        config = step.config
        title = step.render(config.title)
        assignee_id = None
        if config.assignee_email:
            wanted = config.assignee_email.strip().lower()
            match = [u for u in step.state.firm_users(step.firm_id) if u["email"] == wanted]
            if not match:
                return Outcome.fail(f"no user {config.assignee_email} in this firm")
            assignee_id = match[0]["id"]
        due_at = step.moment + timedelta(hours=config.due_in_hours)
        row = tasks.new_task(
            title,
            step.render(config.description),
            due_at,
            contact_id=step.contact_id,
            assignee_id=assignee_id,
            execution_id=step.row["id"],
        )
        if (test := would(step, create_task=row["title"], due_at=due_at.isoformat())) is not None:
            return test
        step.effects.tasks.append(
            {"firm_id": step.firm_id, **row, "created_at": step.moment, "updated_at": step.moment}
        )
        return Outcome(
            result={"title": row["title"], "assignee_id": assignee_id, "due_at": due_at.isoformat()}
        )


# -- deals ------------------------------------------------------------------------


class DealConfig(ActionConfig):
    title: str | None = Field(default=None, max_length=200)
    value: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    stage: str | None = Field(default=None, max_length=100)
    status: Literal["open", "won", "lost"] | None = None


class CreateDealConfig(DealConfig):
    title: str = Field(min_length=1, max_length=200)


def _deal_fields(step: Step) -> dict:
    config = step.config
    fields: dict = {}
    if config.title is not None:
        fields["title"] = step.render(config.title)[: deals.TITLE_MAX]
    if config.value is not None:
        fields["value"] = Decimal(config.value)
    if config.stage is not None:
        fields["stage"] = config.stage
    if config.status is not None:
        fields["status"] = config.status
    return fields


def _plain(fields: dict) -> dict:
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in fields.items()}


@register
class CreateDeal(NodeType):
    key = "create_deal"
    label = "Create deal"
    family = "action"
    icon = "badge-dollar-sign"
    color = "#16a34a"
    description = "Open a deal for the contact."
    Config = CreateDealConfig
    form = (
        form.Text("title", "Deal title", required=True),
        form.Text("stage", "Stage", placeholder="qualified"),
        form.Text("value", "Value", type="number"),
        form.Choice("status", "Status", options=_STATUSES, blank="Unchanged"),
        form.MergeHelp(),
        form.Retry(),
    )
    templated = ("title",)

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

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        fields = {"value": Decimal("0"), "stage": "new", "status": "open", **_deal_fields(step)}
        if (test := would(step, create_deal=_plain(fields))) is not None:
            return test
        row = {
            "firm_id": step.firm_id,
            "contact_id": step.contact_id,
            **fields,
            "closed_at": deals.closing(None, fields["status"], step.moment).get("closed_at"),
            "created_at": step.moment,
            "updated_at": step.moment,
        }
        step.effects.deals_new.append(row)
        if fields["status"] == "open":
            step.contact.deal = {"id": None, "_new": row, **_plain(fields)}
        return Outcome(result={"deal": _plain(fields)})


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
    form = (
        form.Note(help="Changes the contact's latest open deal. Empty fields stay as they are."),
        form.Text("title", "New title"),
        form.Text("stage", "Stage", placeholder="qualified"),
        form.Text("value", "Value", type="number"),
        form.Choice("status", "Status", options=_STATUSES, blank="Unchanged"),
        form.Retry(),
    )

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

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        deal = step.contact.deal
        if not deal:
            return Outcome(status="skipped", result={"reason": "the contact has no open deal"})
        fields = _deal_fields(step)
        deal_id = deal.get("id")
        if (test := would(step, update_deal=_plain(fields), deal_id=deal_id)) is not None:
            return test
        fields.update(deals.closing(deal.get("status"), fields.get("status"), step.moment))
        if deal.get("_new") is not None:
            deal["_new"].update(fields)  # created in this walk: not written yet
        else:
            step.effects.deal_updates.append((deal["id"], {**fields, "_old": dict(deal)}))
        deal.update(_plain({k: v for k, v in fields.items() if k != "closed_at"}))
        if deal.get("status") != "open":
            step.contact.deal = None
        return Outcome(result={"deal_id": deal.get("id"), "changed": _plain(fields)})
