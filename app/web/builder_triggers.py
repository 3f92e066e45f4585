"""The builder's triggers panel: add, configure, enable/disable, remove.

Each trigger type's form is drawn from its pydantic configuration model in
``app/automation/triggers/registry.py`` (a new type gets a form for free),
with pickers for the fields that name the firm's records (forms, lists,
tags, workflows) and the shared rule builder for the contact filter.
"""

from __future__ import annotations

import typing
from datetime import datetime
from typing import Any

from flask import flash, redirect, request, url_for
from sqlalchemy import select

from app.auth import login_required_page
from app.automation.graph import editing
from app.automation.lifecycle.publishing import unpublished_triggers
from app.automation.triggers.registry import (
    TRIGGER_TYPES,
    TriggerType,
    UnknownTriggerType,
    get_trigger_type,
    trigger_config_errors,
)
from app.extensions import db
from app.models import Form, Workflow, WorkflowTrigger
from app.web.builder_common import acting_user, bp, is_htmx, load_workflow, render_panel
from app.web.builder_forms import apply_row_action, error_summary, values_from_form
from app.web.builder_inspector import pickers
from app.web.builder_rules import rules_from_values, rules_values

RULE_KEYS = ("match", "rules")
PICKER_FIELDS = {
    "form_id": "forms",
    "workflow_id": "workflows",
    "list": "lists",
    "tag": "tags",
    "audience": "audiences",
}


def _base_type(annotation: Any) -> type:
    """``int | None`` -> int; ``list[str]`` -> list."""
    origin = typing.get_origin(annotation)
    if origin is list:
        return list
    for arg in typing.get_args(annotation) or (annotation,):
        if arg is not type(None):
            return typing.get_origin(arg) or arg
    return str


def form_fields(kind: TriggerType) -> list[dict[str, Any]]:
    """The inputs of a trigger type's filter, in declaration order."""
    fields = []
    for name, info in kind.Config.model_fields.items():
        if name in RULE_KEYS:
            continue
        base = _base_type(info.annotation)
        fields.append(
            {
                "name": name,
                "label": name.replace("_", " ").capitalize(),
                "type": base.__name__ if isinstance(base, type) else "str",
                "required": info.is_required(),
                "picker": PICKER_FIELDS.get(name),
            }
        )
    return fields


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, str) and len(value) >= 16 and value[10:11] == "T":
        return value.replace("Z", "").replace("+00:00", "")[:16]
    return str(value)


def values_from_trigger(trigger_type: str, configuration: dict | None) -> dict:
    configuration = dict(configuration or {})
    values = {key: _shown(value) for key, value in configuration.items() if key not in RULE_KEYS}
    values.update(rules_values(configuration))
    values["trigger_type"] = trigger_type
    return values


def config_from_form(kind: TriggerType, values: dict) -> tuple[dict, dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    config: dict[str, Any] = {}
    for field in form_fields(kind):
        raw = str(values.get(field["name"]) or "").strip()
        if not raw:
            continue
        name, kind_name = field["name"], field["type"]
        try:
            if kind_name == "int":
                config[name] = int(raw)
            elif kind_name == "float":
                config[name] = float(raw)
            elif kind_name == "list":
                config[name] = [part.strip() for part in raw.split(",") if part.strip()]
            elif kind_name == "datetime":
                moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
                config[name] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
            else:
                config[name] = raw
        except ValueError:
            errors.setdefault(name, []).append(
                "must be a date and time" if kind_name == "datetime" else "must be a number"
            )
    rules = rules_from_values(values, errors)
    if rules["rules"]:
        config.update(rules)
    return config, errors


def _pickers(workflow: Workflow) -> dict[str, Any]:
    data = pickers(workflow)
    data["forms"] = db.session.execute(select(Form.id, Form.name).order_by(Form.name)).all()
    data["workflows"] = db.session.execute(
        select(Workflow.id, Workflow.name).order_by(Workflow.name)
    ).all()
    return data


def _panel(
    workflow: Workflow, status: int = 200, *, editing=None, new=None, message=None, open_id=None
):
    """The whole panel; ``editing`` is {trigger_id: (values, errors)} for a
    form redrawn with what was typed, ``new`` the same for the add form."""
    editing = editing or {}
    unpublished, removed = unpublished_triggers(workflow)
    forms = []
    for trigger in workflow.triggers:
        try:
            kind = get_trigger_type(trigger.trigger_type)
        except UnknownTriggerType:
            kind = None
        values, errors = editing.get(
            trigger.id, (values_from_trigger(trigger.trigger_type, trigger.configuration), {})
        )
        forms.append(
            {
                "trigger": trigger,
                "kind": kind,
                "fields": form_fields(kind) if kind else [],
                "form_values": values,
                "form_errors": errors,
                "summary": error_summary(errors),
                "open": trigger.id in editing or trigger.id == open_id,
                "unpublished": unpublished.get(trigger.id),
            }
        )
    new_form = None
    if new is not None:
        kind, values, errors = new
        new_form = {
            "kind": kind,
            "fields": form_fields(kind),
            "form_values": values,
            "form_errors": errors,
            "summary": error_summary(errors),
        }
    if message and status == 200 and not is_htmx():
        # A plain form post: redirect, so a reload does not post again.
        flash(message)
        return redirect(url_for("builder.triggers_panel", workflow_id=workflow.id))
    families: dict[str, list[TriggerType]] = {}
    for kind in TRIGGER_TYPES.values():
        families.setdefault(kind.family, []).append(kind)
    response = render_panel(
        workflow,
        "builder/_triggers.html",
        status=status,
        trigger_forms=forms,
        removed_live=[_label(row) for row in removed],
        new_form=new_form,
        families=families,
        pickers=_pickers(workflow),
        message=message,
    )
    if status == 200 and message and is_htmx():
        body, code = response
        return body, code, {"HX-Trigger": "graph-changed"}
    return response


def _label(trigger) -> str:
    """A draft or a published trigger's type, in words."""
    kind = TRIGGER_TYPES.get(trigger.trigger_type)
    return kind.label if kind else trigger.trigger_type


def _find(workflow: Workflow, trigger_id: int) -> WorkflowTrigger:
    from flask import abort

    trigger = next((t for t in workflow.triggers if t.id == trigger_id), None)
    if trigger is None:
        abort(404)
    return trigger


@bp.get("/<int:workflow_id>/triggers")
@login_required_page
def triggers_panel(workflow_id: int):
    workflow = load_workflow(workflow_id)
    new = None
    key = request.args.get("trigger_type")
    if key in TRIGGER_TYPES:
        new = (TRIGGER_TYPES[key], values_from_trigger(key, {}), {})
    # The canvas opens the panel on the trigger that was clicked.
    return _panel(workflow, new=new, open_id=request.args.get("open", type=int))


@bp.post("/<int:workflow_id>/triggers")
@login_required_page
def add_trigger(workflow_id: int):
    workflow = load_workflow(workflow_id)
    values = values_from_form(request.form)
    key = values.get("trigger_type", "")
    try:
        kind = get_trigger_type(key)
    except UnknownTriggerType:
        return _panel(workflow, 422, message=f"Choose a trigger type ({key!r} is not one).")
    action = request.form.get("_action", "save")
    if action != "save":
        apply_row_action(values, action)
        return _panel(workflow, new=(kind, values, {}))
    config, errors = config_from_form(kind, values)
    for field, messages in trigger_config_errors(key, config).items():
        errors.setdefault(field, []).extend(messages)
    if errors:
        return _panel(workflow, 422, new=(kind, values, errors))
    # The API's add too (app/automation/graph/editing.py).
    editing.add_trigger(workflow, key, config, user=acting_user())
    db.session.commit()
    return _panel(workflow, message=f"Added trigger: {kind.label}.")


@bp.post("/<int:workflow_id>/triggers/<int:trigger_id>")
@login_required_page
def update_trigger(workflow_id: int, trigger_id: int):
    workflow = load_workflow(workflow_id)
    trigger = _find(workflow, trigger_id)
    values = values_from_form(request.form)
    values["trigger_type"] = trigger.trigger_type
    action = request.form.get("_action", "save")
    if action != "save":
        apply_row_action(values, action)
        return _panel(workflow, editing={trigger.id: (values, {})})
    try:
        kind = get_trigger_type(trigger.trigger_type)
    except UnknownTriggerType:
        return _panel(workflow, 422, message="This trigger type no longer exists; remove it.")
    config, errors = config_from_form(kind, values)
    for field, messages in trigger_config_errors(trigger.trigger_type, config).items():
        errors.setdefault(field, []).extend(messages)
    if errors:
        return _panel(workflow, 422, editing={trigger.id: (values, errors)})
    editing.update_trigger(workflow, trigger, {"configuration": config}, user=acting_user())
    db.session.commit()
    return _panel(workflow, message=f"Saved trigger: {kind.label}.")


@bp.post("/<int:workflow_id>/triggers/<int:trigger_id>/toggle")
@login_required_page
def toggle_trigger(workflow_id: int, trigger_id: int):
    workflow = load_workflow(workflow_id)
    trigger = _find(workflow, trigger_id)
    changes = {"is_active": not trigger.is_active}
    editing.update_trigger(workflow, trigger, changes, user=acting_user())
    db.session.commit()
    return _panel(
        workflow, message="Trigger enabled." if trigger.is_active else "Trigger disabled."
    )


@bp.post("/<int:workflow_id>/triggers/<int:trigger_id>/delete")
@login_required_page
def delete_trigger(workflow_id: int, trigger_id: int):
    workflow = load_workflow(workflow_id)
    trigger = _find(workflow, trigger_id)
    editing.delete_trigger(workflow, trigger, user=acting_user())
    db.session.commit()
    return _panel(workflow, message="Trigger removed.")
