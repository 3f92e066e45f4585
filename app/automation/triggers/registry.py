"""The trigger-type registry: one :class:`TriggerType` per type.

A trigger type carries all of it: its configuration (pydantic ``Config``,
from which the builder's triggers panel draws its form), what starts it
(``driven_by``: an event, the scheduler, or a person/API call), the event
filter of an event-driven type, the runner of a scheduled one, and what its
filter means for contacts already there (``existing_rules``, "enroll
existing contacts"). The types live in ``app/automation/triggers/kinds/``,
one module per family; the bus, the scheduler, the API's enums and the
panel read them from here. Adding a type is one ``register`` call.
"""

from __future__ import annotations

from pydantic import ValidationError

from app.automation.nodes.registry import validation_error_fields
from app.automation.rules.references import unknown_audiences
from app.automation.triggers import kinds  # noqa: F401  (registers every family's types)
from app.automation.triggers.base import (  # noqa: F401  (the registry's public names)
    TRIGGER_TYPES,
    Filter,
    Runner,
    TriggerConfig,
    TriggerType,
    register,
    unregister,
)


def keys_driven_by(driven_by: str) -> frozenset[str]:
    return frozenset(key for key, kind in TRIGGER_TYPES.items() if kind.driven_by == driven_by)


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
    config = configuration or {}
    errors = unknown_audiences(config.get("rules"))
    if kind.check is not None:
        errors.update(kind.check(config))
    return errors


class NoEventFilter(LookupError):
    """An event was matched against a type that events do not start."""


def event_matches(trigger_type: str, configuration: dict | None, data: dict | None) -> bool:
    """True when the event passes the trigger's configuration filter. An
    unknown type, or one no event drives, is an error (never "match all")."""
    kind = get_trigger_type(trigger_type)
    if kind.filter is None:
        raise NoEventFilter(f"trigger type {trigger_type!r} is not started by events")
    return kind.filter(configuration or {}, data or {})
