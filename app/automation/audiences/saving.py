"""Create, change and delete audiences; the pages and the API both call
these, so a rule set is checked in one place. Refusals are
:class:`AudienceError` naming the field (``rules[0].op``)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from app.automation.audiences.membership import resync, resync_dependents
from app.automation.crm.errors import CrmError, name_error
from app.automation.rules.references import audience_ids_in
from app.automation.rules.schema import RuleGroup
from app.extensions import db
from app.models import Audience, Workflow, WorkflowTrigger
from app.models.audit import record
from app.tenancy import scoped_get

NAME_MAX = 200
MAX_RULES = 200
MAX_GROUP_DEPTH = 8
_KINDS = {"group", "field", "tag", "list", "event", "topic", "audience"}


class AudienceError(CrmError):
    """A refused audience operation (422 naming the field in the API)."""


def field_path(loc: tuple) -> str:
    """pydantic's ``("rules", 0, "field", "op")`` as ``rules[0].op`` (the
    tagged union's tag left out)."""
    out = ""
    previous_index = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            previous_index = True
            continue
        if previous_index and part in _KINDS:
            previous_index = False
            continue
        out += f".{part}" if out else str(part)
        previous_index = False
    return out or "rules"


def _size(rules: Any, depth: int = 1) -> tuple[int, int]:
    """(rules counted at every depth, deepest group level) of raw input."""
    if not isinstance(rules, list):
        return 0, depth
    count, deepest = len(rules), depth
    for rule in rules:
        if isinstance(rule, dict) and "rules" in rule:
            inner, level = _size(rule["rules"], depth + 1)
            count, deepest = count + inner, max(deepest, level)
    return count, deepest


def check_rules(match: Any, rules: Any, audience_id: int | None = None) -> dict:
    """The rule group, or AudienceError naming every field at fault."""
    # Bounded before anything walks them: the whole set becomes one SQL
    # condition, and SQLite refuses an expression tree 1,000 deep (a 500).
    count, depth = _size(rules)
    if count > MAX_RULES:
        raise AudienceError(f"at most {MAX_RULES} rules in all, not {count}", field="rules")
    if depth > MAX_GROUP_DEPTH:
        raise AudienceError(f"groups nest at most {MAX_GROUP_DEPTH} levels deep", field="rules")
    try:
        group = RuleGroup.model_validate({"match": match or "all", "rules": rules or []})
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            errors.setdefault(field_path(error["loc"]), error["msg"].removeprefix("Value error, "))
        raise AudienceError.of(errors) from None
    value = group.model_dump(exclude_none=True)
    errors = {}
    _check_references(value["rules"], "rules", audience_id, errors)
    if errors:
        raise AudienceError.of(errors)
    return value


def _reaches(start: int, target: int) -> bool:
    """Whether the saved audience ``start`` contains ``target`` through its
    rules, directly or through other audiences (a walk with a seen set, so
    a cycle already saved cannot make it loop)."""
    seen: set[int] = set()
    todo = [start]
    while todo:
        current = todo.pop()
        if current == target:
            return True
        if current in seen:
            continue
        seen.add(current)
        audience = scoped_get(Audience, current)
        if audience is not None:
            todo.extend(audience_ids_in(audience.rules))
    return False


def _check_references(rules: list, path: str, audience_id: int | None, errors: dict) -> None:
    for i, rule in enumerate(rules):
        here = f"{path}[{i}]"
        if "rules" in rule:
            _check_references(rule["rules"], f"{here}.rules", audience_id, errors)
        elif "audience" in rule:
            wanted = rule["audience"]
            if audience_id is not None and wanted == audience_id:
                errors[f"{here}.audience"] = "an audience cannot contain itself"
            elif scoped_get(Audience, wanted) is None:
                errors[f"{here}.audience"] = "no such audience"
            elif audience_id is not None and _reaches(wanted, audience_id):
                # Membership of each would wait on the other's (docs/CONTRACT.md
                # "Audiences"): refused, never evaluated round the loop.
                errors[f"{here}.audience"] = "that audience contains this one: a cycle"


def is_timed(rules: list) -> bool:
    """Has a time window: membership then changes as time passes."""
    for rule in rules:
        if "rules" in rule and is_timed(rule["rules"]):
            return True
        if rule.get("within_days"):
            return True
    return False


def _name(raw: Any, exclude_id: int | None = None) -> str:
    if raw is not None and not isinstance(raw, str):
        raise AudienceError("Enter a name.", field="name")
    name, error = name_error(raw, NAME_MAX)
    if error:
        raise AudienceError(error, field="name")
    stmt = select(Audience.id).where(Audience.name == name)
    if exclude_id is not None:
        stmt = stmt.where(Audience.id != exclude_id)
    if db.session.scalars(stmt).first() is not None:
        raise AudienceError("An audience with this name exists already.", "name", conflict=True)
    return name


def create_audience(name: Any, match: Any, rules: Any) -> Audience:
    """Save a new audience and fill its members (nobody "enters" on a save:
    segment triggers fire for changes after it)."""
    clean = _name(name)
    group = check_rules(match, rules)
    audience = Audience(
        name=clean, match=group["match"], rules=group["rules"], timed=is_timed(group["rules"])
    )
    db.session.add(audience)
    db.session.flush()
    resync(audience)
    record("audience.created", audience, data={"name": clean})
    db.session.commit()
    return audience


def update_audience(
    audience: Audience, name: Any = None, match: Any = None, rules: Any = None
) -> Audience:
    """Change the given fields (None: keep); new rules re-fill the members."""
    changed = []
    if name is not None:
        audience.name = _name(name, exclude_id=audience.id)
        changed.append("name")
    if match is not None or rules is not None:
        group = check_rules(
            match if match is not None else audience.match,
            rules if rules is not None else audience.rules,
            audience.id,
        )
        audience.match, audience.rules = group["match"], group["rules"]
        audience.timed = is_timed(group["rules"])
        changed.extend(
            name for name, value in (("match", match), ("rules", rules)) if value is not None
        )
        db.session.flush()
        resync(audience)
        resync_dependents(audience)
    record("audience.updated", audience, data={"fields": sorted(changed)})
    db.session.commit()
    return audience


SEGMENT_TRIGGERS = ("segment_entered", "segment_left")


def users_of(audience: Audience) -> list[str]:
    """What names this audience: other audiences' rules and the segment
    triggers of workflows (drafts and live ones), in words."""
    found = [
        f"audience “{other.name}”"
        for other in db.session.scalars(select(Audience).order_by(Audience.name))
        if other.id != audience.id and audience.id in audience_ids_in(other.rules)
    ]
    stmt = (
        select(Workflow.name, WorkflowTrigger.configuration)
        .join(Workflow, Workflow.id == WorkflowTrigger.workflow_id)
        .where(WorkflowTrigger.trigger_type.in_(SEGMENT_TRIGGERS))
        .order_by(Workflow.name)
    )
    for name, configuration in db.session.execute(stmt).all():
        label = f"workflow “{name}”"
        if (configuration or {}).get("audience") == audience.id and label not in found:
            found.append(label)
    return found


def delete_audience(audience: Audience) -> None:
    """Refused (a conflict) while another audience or a workflow's trigger
    names it: they would silently match nobody from then on."""
    users = users_of(audience)
    if users:
        raise AudienceError(
            f"Used by {', '.join(users)}: change those first.", "audience", conflict=True
        )
    record("audience.deleted", audience, data={"name": audience.name})
    db.session.delete(audience)
    db.session.commit()
