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

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import ConfigDict, ValidationError

from app.automation.nodes.registry import validation_error_fields
from app.automation.rules.schema import HasRules

if TYPE_CHECKING:
    from app.models import WorkflowTrigger

# (configuration, event data) -> does the event pass the trigger's filter?
Filter = Callable[[dict, dict], bool]
# (trigger, since, until) -> (occurrence, contact ids) due in (since, until].
Runner = Callable[["WorkflowTrigger", datetime, datetime], Iterable[tuple[str, list[int]]]]


class TriggerConfig(HasRules):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class TriggerType:
    key: str
    label: str
    family: str
    Config: type[TriggerConfig]
    description: str = ""
    # "event": the bus starts it when an event passes ``filter``;
    # "schedule": the scheduler asks ``runner`` what fell due;
    # "direct": a user or an API call starts it.
    driven_by: Literal["event", "schedule", "direct"] = "event"
    filter: Filter | None = None
    runner: Runner | None = None
    # The contact rules that mean the same as the filter, for contacts
    # already there ("tag vip added" -> "has tag vip").
    existing_rules: Callable[[dict], list[dict]] | None = None
    # A scheduled type's "never fires again after ``since``" (its cursor
    # then stays where it is).
    done: Callable[[WorkflowTrigger, datetime], bool] | None = None

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

    def __post_init__(self):
        if self.family not in self.families:
            raise ValueError(f"trigger type {self.key!r}: unknown family {self.family!r}")
        if (self.driven_by == "event") != (self.filter is not None):
            raise ValueError(f"trigger type {self.key!r}: an event filter iff event-driven")
        if (self.driven_by == "schedule") != (self.runner is not None):
            raise ValueError(f"trigger type {self.key!r}: a runner iff scheduled")

    @property
    def scheduled(self) -> bool:
        return self.driven_by == "schedule"


class _Types(dict):
    """The registered types by key; reading it loads the family modules
    first (app/automation/triggers/kinds/), so no caller can see it empty."""

    def __getitem__(self, key):
        _load_all()
        return super().__getitem__(key)

    def __contains__(self, key):
        _load_all()
        return super().__contains__(key)

    def __iter__(self):
        _load_all()
        return super().__iter__()

    def __len__(self):
        _load_all()
        return super().__len__()

    def get(self, key, default=None):
        _load_all()
        return super().get(key, default)

    def keys(self):
        _load_all()
        return super().keys()

    def values(self):
        _load_all()
        return super().values()

    def items(self):
        _load_all()
        return super().items()


TRIGGER_TYPES: _Types = _Types()


def register(trigger_type: TriggerType) -> TriggerType:
    if dict.__contains__(TRIGGER_TYPES, trigger_type.key):
        raise ValueError(f"trigger type {trigger_type.key!r} registered twice")
    dict.__setitem__(TRIGGER_TYPES, trigger_type.key, trigger_type)
    return trigger_type


def unregister(key: str) -> None:
    """Forget a type (tests that register a throwaway one)."""
    dict.pop(TRIGGER_TYPES, key, None)


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
    return {}


class NoEventFilter(LookupError):
    """An event was matched against a type that events do not start."""


def event_matches(trigger_type: str, configuration: dict | None, data: dict | None) -> bool:
    """True when the event passes the trigger's configuration filter. An
    unknown type, or one no event drives, is an error (never "match all")."""
    kind = get_trigger_type(trigger_type)
    if kind.filter is None:
        raise NoEventFilter(f"trigger type {trigger_type!r} is not started by events")
    return kind.filter(configuration or {}, data or {})


_loaded = False
_lock = threading.RLock()


def _load_all() -> None:
    """Import the family modules that register the types, once."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if not _loaded:
            from app.automation.triggers import kinds  # noqa: F401

            _loaded = True
