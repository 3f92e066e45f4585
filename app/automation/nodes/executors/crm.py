"""Executors of the actions that change CRM records.

Each one changes the batch's in-memory facts (so later steps see the
change) and records the write on ``step.effects``; the write-back turns the
whole batch's records into a few set-based statements. In test mode
nothing is recorded: the result says what would have happened.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

from app.automation.nodes.executors import executor
from app.automation.nodes.executors.base import Outcome, Step

_DELTA = re.compile(r"^[+-]\d+$")


def _would(step: Step, **what) -> Outcome | None:
    if step.test_mode:
        return Outcome(result={"test": True, "would": what})
    return None


@executor("add_tag")
def add_tag(step: Step) -> Outcome:
    name = step.render(step.config.tag).strip()
    if not name:
        return Outcome.fail("the tag name is empty")
    if name in step.contact.tags:
        return Outcome(status="skipped", result={"tag": name, "reason": "already tagged"})
    if (test := _would(step, add_tag=name)) is not None:
        return test
    step.contact.tags.add(name)
    step.effects.tag_adds.append((step.contact_id, name))
    return Outcome(result={"tag": name})


@executor("remove_tag")
def remove_tag(step: Step) -> Outcome:
    name = step.render(step.config.tag).strip()
    if name not in step.contact.tags:
        return Outcome(status="skipped", result={"tag": name, "reason": "not tagged"})
    if (test := _would(step, remove_tag=name)) is not None:
        return test
    step.contact.tags.discard(name)
    step.effects.tag_removes.append((step.contact_id, name))
    return Outcome(result={"tag": name})


def _firm_list(step: Step) -> tuple[int, str] | Outcome:
    list_id = int(step.config.list)
    lists = step.state.firm_lists(step.firm_id)
    if list_id not in lists:
        return Outcome.fail(f"list {list_id} does not exist in this firm")
    return list_id, lists[list_id]


@executor("add_to_list")
def add_to_list(step: Step) -> Outcome:
    found = _firm_list(step)
    if isinstance(found, Outcome):
        return found
    list_id, name = found
    if list_id in step.contact.lists:
        return Outcome(status="skipped", result={"list": list_id, "reason": "already a member"})
    if (test := _would(step, add_to_list=list_id)) is not None:
        return test
    step.contact.lists.add(list_id)
    step.effects.list_adds.append((step.contact_id, list_id))
    return Outcome(result={"list": list_id, "list_name": name})


@executor("remove_from_list")
def remove_from_list(step: Step) -> Outcome:
    found = _firm_list(step)
    if isinstance(found, Outcome):
        return found
    list_id, name = found
    if list_id not in step.contact.lists:
        return Outcome(status="skipped", result={"list": list_id, "reason": "not a member"})
    if (test := _would(step, remove_from_list=list_id)) is not None:
        return test
    step.contact.lists.discard(list_id)
    step.effects.list_removes.append((step.contact_id, list_id))
    return Outcome(result={"list": list_id, "list_name": name})


def _coerce(name: str, value):
    if name == "unsubscribed":
        return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}
    if name == "score":
        return int(value)
    return "" if value is None else step_text(value)


def step_text(value) -> str:
    return value if isinstance(value, str) else str(value)


@executor("update_contact")
def update_contact(step: Step) -> Outcome:
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
        if name == "score" and isinstance(value, str) and _DELTA.match(value.strip()):
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
    if (test := _would(step, update_contact=new_values)) is not None:
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


@executor("create_task")
def create_task(step: Step) -> Outcome:
    config = step.config
    title = step.render(config.title)[:300]
    assignee_id = None
    if config.assignee_email:
        wanted = config.assignee_email.strip().lower()
        match = [u for u in step.state.firm_users(step.firm_id) if u["email"] == wanted]
        if not match:
            return Outcome.fail(f"no user {config.assignee_email} in this firm")
        assignee_id = match[0]["id"]
    due_at = step.moment + timedelta(hours=config.due_in_hours)
    if (test := _would(step, create_task=title, due_at=due_at.isoformat())) is not None:
        return test
    step.effects.tasks.append(
        {
            "firm_id": step.firm_id,
            "contact_id": step.contact_id,
            "assignee_id": assignee_id,
            "execution_id": step.row["id"],
            "title": title,
            "description": step.render(config.description),
            "due_at": due_at,
            "status": "open",
            "created_at": step.moment,
            "updated_at": step.moment,
        }
    )
    return Outcome(
        result={"title": title, "assignee_id": assignee_id, "due_at": due_at.isoformat()}
    )


def _deal_fields(step: Step) -> dict:
    config = step.config
    fields: dict = {}
    if config.title is not None:
        fields["title"] = step.render(config.title)[:200]
    if config.value is not None:
        fields["value"] = Decimal(config.value)
    if config.stage is not None:
        fields["stage"] = config.stage
    if config.status is not None:
        fields["status"] = config.status
    return fields


def _plain(fields: dict) -> dict:
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in fields.items()}


@executor("create_deal")
def create_deal(step: Step) -> Outcome:
    fields = {"value": Decimal("0"), "stage": "new", "status": "open", **_deal_fields(step)}
    if (test := _would(step, create_deal=_plain(fields))) is not None:
        return test
    row = {
        "firm_id": step.firm_id,
        "contact_id": step.contact_id,
        **fields,
        "closed_at": step.moment if fields["status"] != "open" else None,
        "created_at": step.moment,
        "updated_at": step.moment,
    }
    step.effects.deals_new.append(row)
    if fields["status"] == "open":
        step.contact.deal = {"id": None, "_new": row, **_plain(fields)}
    return Outcome(result={"deal": _plain(fields)})


@executor("update_deal")
def update_deal(step: Step) -> Outcome:
    deal = step.contact.deal
    if not deal:
        return Outcome(status="skipped", result={"reason": "the contact has no open deal"})
    fields = _deal_fields(step)
    if (test := _would(step, update_deal=_plain(fields), deal_id=deal.get("id"))) is not None:
        return test
    if fields.get("status") in ("won", "lost"):
        fields["closed_at"] = step.moment
    if deal.get("_new") is not None:
        deal["_new"].update(fields)  # created in this walk: not written yet
    else:
        step.effects.deal_updates.append((deal["id"], {**fields, "_old": dict(deal)}))
    deal.update(_plain({k: v for k, v in fields.items() if k != "closed_at"}))
    if deal.get("status") != "open":
        step.contact.deal = None
    return Outcome(result={"deal_id": deal.get("id"), "changed": _plain(fields)})


@executor("internal_notification")
def internal_notification(step: Step) -> Outcome:
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
    if (test := _would(step, notify=emails, message=message)) is not None:
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
